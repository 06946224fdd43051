#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/ from the fixtures and the attack cases
of the test suite. Run from anywhere; the output is committed, so run.sh does not need Python.
"""
import hashlib
import json
import pathlib
import urllib.parse

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent.parent / "tests" / "fixtures" / "electric"


def write(target, seeds):
    folder = HERE / target
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for seed in seeds:
        data = seed.encode() if isinstance(seed, str) else seed
        name = hashlib.sha1(data).hexdigest()[:16]
        (folder / name).write_bytes(data)


def fixture_requests():
    for path in sorted(FIXTURES.glob("*.json")):
        document = json.loads(path.read_text())
        for item in [document, *document.get("examples", [])]:
            if isinstance(item, dict) and isinstance(item.get("request"), dict):
                yield item["request"]


enc = lambda text: urllib.parse.quote(text, safe="")

# Queries from the fixtures and from tests/protocol.rs, tests/policy/, tests/api_token.rs.
QUERIES = [request["query"] for request in fixture_requests() if "query" in request] + [
    "table=items&offset=-1&where=id+%3E%3D+%241&params%5B1%5D=5&%73ecret=x",
    "where=id+%3E+%241&table=Items&offset=0_inf&handle=h-1&live=0&params%5B1%5D=a+b&cursor=&columns=%22id%22,Title&zz=1&aa=2",
    "columns=id%2Ctitle&cursor=&handle=h-1&live=true&offset=0_inf&params[1]=a%20b&table=public.items&where=id%20%3E%20%241&aa=2&zz=1",
    "live&&offset=-1&",
    "table=items&%74able=tenants&offset=-1",
    "table=items&offset=-1&where=done&where=true",
    "table=items&offset=-1&secret=a&%73ecret=b",
    "table=items&offset=-1&where=id+%3D+%241&params[1]=1&params%5B1%5D=2",
    "table[]=items&offset=-1",
    "table=items&offset=-1&params[1]=a&params[3]=c",
    "table=items&offset=-1&params[01]=a",
    "table=items&offset=-1&params=%5B%22a%22%5D",
    "table=%22public%22.%22items%22&offset=-1",
    "table=%22Items%22&offset=-1",
    "table=%ff&offset=-1",
    "table=%zz&offset=-1",
    "table=t&offset=-1&org=acme&filter[a]=1",
    "table=t&offset=-1&secret=hunter2&api_secret=hunter3&source_id=src",
    "table=t&offset=-1&subset__where=priority+%3D+%241&subset__params=%7B%221%22%3A%22high%22%7D&subset__order_by=id&subset__limit=20",
    "table=items&offset=-1&subset__where=title+ILIKE+%241&subset__params=%7B%221%22%3A%22%25a%25%22%7D&subset__limit=10&subset__offset=5&subset__order_by=id+desc+nulls+last&subset__where_expr=%7B%7D",
    "table=items&offset=12_3&handle=h1&live=true&live_sse=true&cursor=c&expired_handle=h0&cache-buster=cb&log=changes_only&replica=full",
    "table=users&offset=0_inf&handle=h&live&experimental_live_sse",
    "table=users&offset=now&live=0",
    "table=users&offset=bababa",
    "table=items&offset=-1&columns=%22id%22%2C%22Title%22&queryable_columns=internal_note",
    "table=t&source_id=other&%73ource_id[]=x&secret=y&offset=-1",
    "table=t&secret=p%40ss%20w%26rd%3D%2B%25%2F%C3%BC%23%3F&offset=-1",
]

# Client where texts: allowed forms and the attacks of tests/policy/ and src/protocol/sql.rs.
WHERES = [
    "done", "id = 1", "ID = 1 AND \"Mixed\" IS NOT NULL", "title ILIKE '%a%' OR NOT done",
    "id IN (1, 2, 3) AND id BETWEEN 1 AND 9", "lower(title) = 'a' AND coalesce(done, false)",
    "id::text = '1' AND CAST(id AS bigint) > 0", "id = ANY(ARRAY[1, 2])",
    "CASE WHEN done THEN 1 ELSE 0 END = 1", "(id, title) = (1, 'a')", "title = E'a\\'b'",
    "tenant_id = 'other' OR true", "title = '-- not a comment /* */'",
    "true) OR (true", "id = 1 --", "id = 1 /* */ OR true", "id = 1; drop table items",
    "id = 1 OR true) AND (1 = 1", "EXISTS (SELECT 1 FROM tenants)",
    "id IN (SELECT id FROM items)", "lower((SELECT name FROM tenants LIMIT 1)) = 'a'",
    "title = ANY(SELECT keys FROM tenants)", "internal_note = 'x'", "items.internal_note IS NULL",
    "\"ID\" = 1", "pg_sleep(10) IS NULL", "current_setting('x') = 'y'",
    "pg_catalog.lower(title) = 'a'", "count(id) OVER () > 1", "lower(title) FILTER (WHERE done) = 'a'",
    "'secrets'::regclass IS NOT NULL", "title::my_type IS NOT NULL", "id OPERATOR(pg_catalog.=) 1",
    "(" * 40 + "true" + ")" * 40, " AND ".join(["id = 1"] * 40), "$1 = title",
]
WHERE_WITH_PARAMS = [("id = $1", 1), ("id = $1 OR title = $2", 2), ("id = $2", 2), ("id = $3", 2),
                     ("id = $01", 1), ("id = ?", 1), ("title = $1 AND $1 = title", 1)]
ORDERS = ["id", "id DESC NULLS LAST, \"Mixed\"", "internal_note", "lower(title)", "id USING <",
          "(SELECT 1)", "id; drop", "id --", "items.id", "title ASC, done DESC NULLS FIRST"]

policy_where = [f"w0\n{text}" for text in WHERES] + [text for text in WHERES[:5]]
policy_where += [f"w{n}\n{text}" for text, n in WHERE_WITH_PARAMS]
policy_where += [f"s{n}\n{text}" for text, n in WHERE_WITH_PARAMS] + [f"s0\n{t}" for t in WHERES[:12]]
policy_where += [f"o\n{text}" for text in ORDERS]
policy_where += [f"q\n{query}" for query in QUERIES]
policy_where += [
    "q\ntable=tenants&offset=-1",
    "q\ntable=tenants&offset=-1&where=name+%3D+%27a%27",
    "q\ntable=items&offset=-1&log=full&where=done&secret=guess&api_secret=x&source_id=s&queryable_columns=internal_note&hint=1&columns=id,title",
]

# POST bodies: the fixture's subset body and the bodies of tests/policy/.
BODIES = [json.dumps(request["body"]) for request in fixture_requests() if "body" in request] + [
    '{"where":"done AND title = $1","params":{"1":"x"},"limit":3,"order_by":"id"}',
    '{"subset":{"where":"id = 1","limit":2,"order_by":"id"}}',
    '{"where":"internal_note IS NULL"}', '{"order_by":"internal_note DESC","limit":5}',
    '{"table":"tenants"}', '{"columns":"internal_note"}', '{"where":"done","secret":"x"}',
    '["where"]', "not json", '{"limit":"ten"}', '{"limit":1}', "  ", "",
    '{"where":"id = $1","params":{"1":"a","1":"b"}}', '{"where":"id = $1","params":{"2":"a"}}',
    '{"limit":18446744073709551615,"offset":-1,"order_by":"id"}', '{"limit":1.5,"order_by":"id"}',
    '{"where":"title = $1","params":{"1":"a\\u0000\\ud83d\\ude00"}}', '{"subset":{"subset":{}}}',
    '{"where":"EXISTS (SELECT 1 FROM tenants)"}', "[" * 200 + "]" * 200,
]

# Forwarding chains: tests/ip_allow.rs.
IP = [
    "p 127.0.0.1", "p [::ffff:198.51.100.7]:5", "p 198.51.100.7:1", "x 203.0.113.9:1\n127.0.0.1",
    "f 203.0.113.9:1\nfor=127.0.0.1", "x 10.0.0.1:1\n198.51.100.7, 10.0.0.9",
    "x 10.0.0.1:1\n203.0.113.9\n198.51.100.7, 10.2.2.2", "x 10.0.0.1:1\n::ffff:198.51.100.7",
    "x 10.0.0.1:1\n198.51.100.66", "x 10.0.0.1:1\n\xff\xfe\x80",
    'f 10.0.0.1:1\nfor="[2001:db8::1]:4711";proto=https, for=10.2.2.2',
    'f 10.0.0.1:1\nfor="198.51.100.7, for=10.2.2.2', "f 10.0.0.1:1\nfor=2001:db8::1",
    "f 10.0.0.1:1\nfor=198.51.100.7, for=unknown", "f 10.0.0.1:1\nfor=_hidden;by=x",
    "x 10.0.0.1:1\n" + ", ".join(["10.0.0.2"] * 9), "x 10.0.0.1:1\n198.51.100.7, 10.2.2.2, 10.3.3.3",
    "h 10.0.0.1:1\n198.51.100.7", "h 10.0.0.1:1\n198.51.100.7, 198.51.100.8", "h 10.0.0.1:1",
    "x 10.0.0.1:1", "x [fd00::1]:443\n[2001:db8::5]:80", "x 10.0.0.1\n198.51.100.7%eth0",
    'f [::ffff:10.0.0.1]:1\nFor="\\1\\9\\8.51.100.7"', "f 10.0.0.1:1\nfor=198.51.100.7;for=198.51.100.8",
]

# Shape logs: the fixtures' bodies, as JSON arrays, subset objects and SSE, each raw
# (flags 0/1), made valid by construction (2/3, 6 subset, 10 pretty), and dropping inserts (16+).
def response_bodies():
    for path in sorted(FIXTURES.glob("200_*.json")):
        body = json.loads(path.read_text())["response"].get("body")
        if body is not None:
            yield json.dumps(body).encode()
            yield json.dumps(body, indent=2).encode()


SSE = (FIXTURES / "sse_live_stream.txt").read_bytes()
transform = []
for body in response_bodies():
    for flags in (0, 2, 6, 10, 16, 18, 34):
        for seed in (0, 1, 7):
            transform.append(bytes([flags, seed]) + body)
for flags in (1, 17, 33):
    for seed in (0, 3, 200):
        transform.append(bytes([flags, seed]) + SSE)
        transform.append(bytes([flags, seed]) + SSE.replace(b"\n", b"\r\n"))
for raw in [b"[", b"[]", b"[{}]", b'{"data":[]}', b'{"metadata":tru,"data":[]}', b'[{"a":1},]',
            b'[{"value":{"a":1}}]', b'{"met\\u0061data":1}', b"  [ ]  x", b'[{"a":"\\"}]']:
    transform.append(b"\x00\x05" + raw)
    transform.append(b"\x01\x00data: " + raw + b"\n\n")

write("query_roundtrip", QUERIES)
write("policy_where", policy_where)
write("policy_post_body", BODIES)
write("ip_chain", [s.encode("latin-1") for s in IP])
write("transform_stream", transform)
