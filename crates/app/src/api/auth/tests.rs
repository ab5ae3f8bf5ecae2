use super::*;

fn parse(body: &str) -> Result<TokenRequest, String> {
    TokenRequest::parse(body.as_bytes()).map_err(|err| match err {
        LoginResponse::BadRequest(Json(body)) => body.error_description,
        other => format!("{other:?}"),
    })
}

#[test]
fn fields_are_percent_and_plus_decoded() {
    let form = parse("username=ann%40example.com&password=correct+horse%21").unwrap();
    assert_eq!(form.optional("username"), Some("ann@example.com"));
    assert_eq!(form.optional("password"), Some("correct horse!"));
}

#[test]
fn empty_values_count_as_absent() {
    let form = parse("username=&password").unwrap();
    assert_eq!(form.optional("username"), None);
    assert!(form.required("password").is_err());
}

#[test]
fn a_repeated_field_is_refused() {
    assert_eq!(
        parse("username=a&password=b&username=c").unwrap_err(),
        "the username parameter is repeated"
    );
}

#[test]
fn unknown_fields_are_ignored_even_when_repeated() {
    let form = parse("x=1&x=2&username=a").unwrap();
    assert_eq!(form.optional("username"), Some("a"));
    assert_eq!(form.optional("x"), None);
}

#[test]
fn a_value_that_is_not_utf8_is_refused() {
    assert_eq!(
        parse("username=a&password=%FF%FE").unwrap_err(),
        "the form is not valid UTF-8"
    );
}
