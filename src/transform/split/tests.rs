//! The splitter's tests: each framing's messages kept, replaced and dropped in every
//! chunking, and the bodies it refuses.

use super::*;

/// Drops messages containing `"drop"` and replaces those containing `"swap"` with
/// `{"swapped":1}`. With `prefix`, it also reads messages at the start of a chunk's rest
/// (finding their end with serde), as the transform's one-pass reader does.
struct TestMessages {
    prefix: bool,
}

impl OnMessage for TestMessages {
    fn prefix(
        &mut self,
        text: &str,
        out: &mut Vec<u8>,
    ) -> Result<Option<(usize, Outcome)>, TransformError> {
        if !self.prefix {
            return Ok(None);
        }
        let mut values = serde_json::Deserializer::from_str(text)
            .into_iter::<serde_json::Map<String, serde_json::Value>>();
        let Some(Ok(_)) = values.next() else {
            return Ok(None);
        };
        let len = values.byte_offset();
        let message = text.get(..len).unwrap().as_bytes();
        Ok(Some((len, self.whole(message, out)?)))
    }

    fn whole(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<Outcome, TransformError> {
        let text = std::str::from_utf8(message).unwrap();
        if text.contains("\"drop\"") {
            Ok(Outcome::Dropped)
        } else if text.contains("\"swap\"") {
            out.extend_from_slice(br#"{"swapped":1}"#);
            Ok(Outcome::Replaced)
        } else {
            Ok(Outcome::Unchanged)
        }
    }
}

/// Runs `input` through a splitter in chunks of `size`, with and without the one-pass
/// reading of messages; both must give the same result.
fn run(framing: Framing, input: &[u8], size: usize) -> Result<Vec<u8>, TransformError> {
    let scanned = run_with(framing, input, size, false);
    let read = run_with(framing, input, size, true);
    assert_eq!(
        format!("{scanned:?}"),
        format!("{read:?}"),
        "{input:?} in chunks of {size}"
    );
    read
}

fn run_with(
    framing: Framing,
    input: &[u8],
    size: usize,
    prefix: bool,
) -> Result<Vec<u8>, TransformError> {
    let mut splitter = Splitter::new(framing, 64);
    let mut messages = TestMessages { prefix };
    let mut output = Vec::new();
    for chunk in input.chunks(size) {
        splitter.push(&Bytes::copy_from_slice(chunk), &mut messages)?;
        while let Some(frame) = splitter.output.pop() {
            output.extend_from_slice(&frame);
        }
    }
    splitter.finish()?;
    Ok(output)
}

fn every_chunking(framing: Framing, input: &str, expected: &str) {
    for size in 1..=input.len() {
        let output = run(framing, input.as_bytes(), size).unwrap();
        assert_eq!(
            String::from_utf8(output).unwrap(),
            expected,
            "chunk size {size}"
        );
    }
}

#[test]
fn untouched_arrays_pass_byte_for_byte() {
    for input in [
        "[]",
        " [ ] \n",
        r#"[{"a":"]}\"{["},{"b":[1,{"c":null}]}]"#,
        "[\n{\"a\":\"\\\\\"}\n,\n{}\n]\n",
    ] {
        every_chunking(Framing::Json, input, input);
    }
}

#[test]
fn dropped_messages_take_their_comma_with_them() {
    every_chunking(Framing::Json, r#"[{"x":"drop"}, {"a":1}]"#, r#"[{"a":1}]"#);
    every_chunking(Framing::Json, r#"[{"a":1}, {"x":"drop"}]"#, r#"[{"a":1}]"#);
    every_chunking(
        Framing::Json,
        r#"[{"a":1},{"x":"drop"},{"b":2}]"#,
        r#"[{"a":1},{"b":2}]"#,
    );
    every_chunking(Framing::Json, r#"[{"x":"drop"},{"x":"drop"}]"#, "[]");
}

#[test]
fn replaced_messages_keep_their_separators() {
    every_chunking(
        Framing::Json,
        r#"[{"x":"swap"} , {"a":1}]"#,
        r#"[{"swapped":1} , {"a":1}]"#,
    );
}

#[test]
fn subset_object_data_messages_are_split_out() {
    every_chunking(
        Framing::Json,
        r#"{"metadata":{"xmin":"1","l":["]"]},"n":-1.5e3,"t":true,"s":"da\"ta","data":[{"x":"swap"},{"x":"drop"}]}"#,
        r#"{"metadata":{"xmin":"1","l":["]"]},"n":-1.5e3,"t":true,"s":"da\"ta","data":[{"swapped":1}]}"#,
    );
}

#[test]
fn sse_lines_are_transformed_and_dropped_events_vanish() {
    every_chunking(
        Framing::Sse,
        "data: {\"x\":\"swap\"}\n\ndata: {\"x\":\"drop\"}\n\n: keep-alive\n\ndata:{\"a\":1}\r\n\r\n",
        "data: {\"swapped\":1}\n\n: keep-alive\n\ndata:{\"a\":1}\r\n\r\n",
    );
}

#[test]
fn truncated_and_malformed_bodies_are_errors() {
    for input in [
        "",
        "[",
        "[{\"a\":1}",
        "[{\"a\":1},",
        "[{\"a\":\"1}]",
        "{\"data\":[]",
        "[1]",
        "[{}}",
        "[{} {}]",
        "[{}]x",
        "{\"data\":{}}",
        "{\"d\\u0061ta\":[]}",
        "x",
    ] {
        for size in 1..=input.len().max(1) {
            assert!(
                run(Framing::Json, input.as_bytes(), size).is_err(),
                "{input:?} in chunks of {size}"
            );
        }
    }
    assert!(matches!(
        run(Framing::Sse, b"data: {}\n\ndata: {", 4),
        Err(TransformError::Truncated)
    ));
}

/// Found by the `transform_stream` fuzz target: members of the subset object other than
/// `data` passed on unchecked, so a body that is not JSON ended without an error.
#[test]
fn subset_members_other_than_data_must_be_json() {
    for input in [
        "{\"metadata\":tru,\"data\":[]}",
        "{\"metadata\":[},\"data\":[]}",
        "{\"metadata\":{\"a\":},\"data\":[]}",
        "{\"metadata\":01,\"data\":[]}",
        "{\"metadata\":\"\u{1}\",\"data\":[]}",
        "{\"metadata\":\"\\x\",\"data\":[]}",
        "{\"meta\ndata\":1,\"data\":[]}",
    ] {
        for size in 1..=input.len() {
            assert!(
                matches!(
                    run(Framing::Json, input.as_bytes(), size),
                    Err(TransformError::Malformed { .. })
                ),
                "{input:?} in chunks of {size}"
            );
        }
    }
    for input in [
        &b"{\"metadata\":{\"x\xff\":1},\"data\":[]}"[..],
        b"{\"metadata\":\"\xff\",\"data\":[]}",
        b"{\"\xff\":1,\"data\":[]}",
    ] {
        for size in 1..=input.len() {
            assert!(
                matches!(
                    run(Framing::Json, input, size),
                    Err(TransformError::Malformed { .. })
                ),
                "{input:?} in chunks of {size}"
            );
        }
    }
    // Over the cap and not JSON: the same error in every chunking (the size is checked
    // first, as it must be for a name that spans chunks).
    let long_name = format!("{{\"{}\u{1}\":1,\"data\":[]}}", "n".repeat(70));
    for size in 1..=long_name.len() {
        assert!(matches!(
            run(Framing::Json, long_name.as_bytes(), size),
            Err(TransformError::MessageTooLarge { limit: 64 })
        ));
    }
    let valid = r#"{"metadata":{"xip":["1",[2]],"s":"a\"}"},"n":-1.5e3,"t":true,"data":[]}"#;
    every_chunking(Framing::Json, valid, valid);
}

/// Found by the `transform_stream` fuzz target: whitespace between messages longer than
/// the cap was refused when it spanned chunks (it is held) and passed when it did not.
#[test]
fn long_separators_are_errors_in_any_chunking() {
    let spaces = " ".repeat(70);
    for input in [
        format!("[{spaces}]"),
        format!("[{{\"a\":1}},{spaces}{{\"b\":2}}]"),
        format!("{{\"data\":[{{\"a\":1}}{spaces}]}}"),
    ] {
        for size in 1..=input.len() {
            assert!(
                matches!(
                    run(Framing::Json, input.as_bytes(), size),
                    Err(TransformError::MessageTooLarge { limit: 64 })
                ),
                "{input:?} in chunks of {size}"
            );
        }
    }
    let short = format!("[{{\"a\":1}},{}{{\"b\":2}}]", " ".repeat(60));
    every_chunking(Framing::Json, &short, &short);
}

/// Found by the `transform_stream` fuzz target: an SSE line of exactly the cap, ending in
/// `\r\n`, was refused when the chunks split the `\r` from the `\n`.
#[test]
fn an_sse_line_of_the_cap_passes_in_any_chunking() {
    let line = format!(": {}\r\ndata: {{}}\r\n\r\n", "x".repeat(62));
    every_chunking(Framing::Sse, &line, &line);
}

#[test]
fn oversized_messages_are_errors_in_any_chunking() {
    let long = format!(r#"[{{"a":"{}"}}]"#, "x".repeat(100));
    for size in [1, 7, long.len()] {
        assert!(matches!(
            run(Framing::Json, long.as_bytes(), size),
            Err(TransformError::MessageTooLarge { limit: 64 })
        ));
    }
    let line = format!("data: {}\n", "x".repeat(100));
    assert!(matches!(
        run(Framing::Sse, line.as_bytes(), 5),
        Err(TransformError::MessageTooLarge { .. })
    ));
}

#[test]
fn untouched_chunks_become_slices_of_themselves() {
    let chunk = Bytes::from_static(br#"[{"a":1},{"b":2}]"#);
    let mut splitter = Splitter::new(Framing::Json, 64);
    splitter
        .push(&chunk, &mut TestMessages { prefix: true })
        .unwrap();
    let frame = splitter.output.pop().unwrap();
    assert_eq!(frame.as_ptr(), chunk.as_ptr());
    assert_eq!(frame.len(), chunk.len());
    assert!(splitter.output.pop().is_none());
}
