use serde_json::json;

use super::*;

fn decoded(message: Value) -> Result<JsonRequest, (Option<Value>, String)> {
    decode_json(message.to_string().as_bytes())
}

#[test]
fn decodes_both_request_forms_with_their_id() {
    let rows = decoded(json!({"id": "a", "x": [[1, 2.5], [3, 4]]})).unwrap();
    assert_eq!(rows, JsonRequest { id: Some(json!("a")), values: vec![1.0, 2.5, 3.0, 4.0], width: Some(2) });
    let original = decoded(json!({"x_predict": [10, 15.5], "other": {"ignored": true}})).unwrap();
    assert_eq!(original, JsonRequest { id: None, values: vec![10.0, 15.5], width: Some(1) });
    let lists = decoded(json!({"id": {"n": 7}, "x_predict": [[1, 2]]})).unwrap();
    assert_eq!((lists.id, lists.values, lists.width), (Some(json!({"n": 7})), vec![1.0, 2.0], Some(2)));
    let empty = decoded(json!({"x": []})).unwrap();
    assert_eq!((empty.values.len(), empty.width), (0, None));
}

#[test]
fn refuses_every_malformed_json_request() {
    let refusals = [
        ("{\"x\": [[1]", "EOF"),
        ("[1, 2]", "an object"),
        ("{\"id\": 1}", "no rows"),
        ("{\"x\": [[1]], \"x_predict\": [1]}", "once"),
        ("hello", "the message is not valid JSON: expected value at line 1 column 1"),
        ("{\"x\": [1, 2]}", "a row: a list of numbers"),
        ("{\"x\": [[1, 2], [3]]}", "row 1 has 1 values; row 0 has 2"),
        ("{\"x_predict\": [\"a\"]}", "a number or a list"),
        ("{\"x\": [[null]]}", "null"),
        ("{\"x\": 5}", "a list of rows"),
        ("{\"x\": [[1]]} trailing", "trailing"),
    ];
    for (message, expected) in refusals {
        let (_, error) = decode_json(message.as_bytes()).unwrap_err();
        assert!(error.contains(expected), "{message}: {error}");
    }
    let (id, _) = decode_json(br#"{"id": 6, "x": [[1e400]], "more": "#).unwrap_err();
    assert_eq!(id, Some(json!(6)), "the id read before the error is kept");
}

#[test]
fn reads_the_id_of_a_request_that_does_not_decode() {
    assert_eq!(id_of(br#"{"id": [1, "b"], "x": "no"}"#), Some(json!([1, "b"])));
    assert_eq!(id_of(br#"{"id": 1, "x": ["#), None);
    assert_eq!(id_of(br#"{"x": 1}"#), None);
}

#[test]
fn binary_values_are_whole_rows_of_little_endian_f64() {
    let bytes = encode_binary(&[1.5, -2.0, 1e300]);
    assert_eq!(&bytes[..8], &1.5f64.to_le_bytes());
    assert_eq!(decode_binary(&bytes, 1).unwrap(), vec![1.5, -2.0, 1e300]);
    assert_eq!(decode_binary(&[], 3).unwrap(), Vec::<f64>::new());
    let error = decode_binary(&bytes, 2).unwrap_err();
    assert!(error.contains("24 bytes are not whole rows") && error.contains("16 bytes a row"), "{error}");
    assert!(decode_binary(&bytes[..7], 1).is_err());
    assert!(decode_binary(&bytes, 0).is_err());
}

#[test]
fn encodes_answers_and_errors() {
    assert_eq!(encode_json(Some(&json!(3)), &[1.0, 2.5], 4), r#"{"id":3,"y":[1.0,2.5],"version":4}"#);
    assert_eq!(encode_json(None, &[], 1), r#"{"y":[],"version":1}"#);
    assert_eq!(error_json(Some(&json!("a")), "bad"), r#"{"error":"bad","id":"a"}"#);
    assert_eq!(error_json(None, "bad"), r#"{"error":"bad"}"#);
}

#[test]
fn rows_must_be_as_wide_as_the_model() {
    let features = ["a".to_owned()];
    assert!(check_width(Some(1), &features).is_ok());
    assert!(check_width(None, &features).is_ok());
    let error = check_width(Some(2), &features).unwrap_err();
    assert!(error.contains("rows have 2 values; the model takes 1 feature(s) (a)"), "{error}");
}
