"""Schemathesis checks for Electric's OpenAPI spec in front of the example gateway.

Loaded by e2e/schemathesis.toml (`hooks`). Two checks:

- `status_code_conformance_behind_gateway` replaces the built-in `status_code_conformance`:
  the same check against the statuses Electric's spec documents, plus the statuses the
  spec cannot know about because the gateway (or Electric, where the spec has drifted)
  answers them. Any other status, and every 5xx, still fails.
- `electric_headers_present`: the headers Electric's TypeScript client requires on a 200
  (it stops with MissingHeadersError without them). The spec documents them but marks
  none as required, so the built-in `response_headers_conformance` cannot see them missing.
"""

import schemathesis
from schemathesis.specs.openapi.checks import status_code_conformance

# Statuses a client of the gateway gets that Electric's spec does not list for GET /v1/shape:
GATEWAY_STATUSES = {
    # The gateway's authentication: no principal or an unknown bearer token. (Electric itself
    # answers 401 for a wrong `secret`, also unlisted; the gateway supplies that secret.)
    401: "no or unknown credentials (the gateway's auth)",
    # ShapeParamPolicyLayer: a table, column or where the caller may not see.
    403: "refused by the gateway's shape policy",
    # ShapeParamPolicyLayer: a query longer than its limit.
    414: "query longer than the gateway's limit",
    # Electric answers 304 to a matching If-None-Match (the spec documents the request
    # header but not the response; PROTOCOL.md lists this drift).
    304: "If-None-Match matched (Electric's behaviour, missing from the spec)",
}


@schemathesis.check
def status_code_conformance_behind_gateway(ctx, response, case):
    if response.status_code in GATEWAY_STATUSES:
        return None
    return status_code_conformance(ctx, response, case)


@schemathesis.check
def electric_headers_present(ctx, response, case):
    if case.method.upper() != "GET" or response.status_code != 200:
        return None
    headers = {name.lower() for name in response.headers}
    required = ["electric-handle", "electric-offset"]
    live = case.query.get("live") not in (None, "false", False) if case.query else False
    # Live responses carry the cursor; the others carry the schema.
    required.append("electric-cursor" if live else "electric-schema")
    missing = [name for name in required if name not in headers]
    if missing:
        raise AssertionError(f"a 200 without {', '.join(missing)}: Electric's client stops here")
    return None
