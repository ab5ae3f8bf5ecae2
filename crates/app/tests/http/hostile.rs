//! The hostile-input sweep: every input of every operation, as the generated OpenAPI document
//! lists them, gets each hostile value in turn (NUL, escaped lone surrogates, bidi overrides,
//! lengths at and over the limits, extreme and out-of-range integers, negative ids, empty and
//! blank strings, wrong types), and every body gets duplicate keys, deep nesting and broken
//! JSON. Whatever the answer, it is never a 5xx, it is JSON, and when it is an error nothing
//! was stored. New operations are swept without anyone listing them here.

use poem::http::{Method, StatusCode};
use serde_json::{Map, Value, json};
use sqlx::Row;
use warden_adapters::Backend;

use crate::support::*;

warden_adapters::on_both_databases!(
    #[tokio::test(flavor = "multi_thread")]
    crate::support::with_app => no_input_of_any_operation_breaks_the_server_or_half_stores,
);

/// The test's own connection to the app's database, to look at what is stored.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    async fn connect(url: &str) -> Self {
        match Backend::of_url(url).unwrap() {
            Backend::Sqlite => Self::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap()),
            Backend::Postgres => Self::Postgres(sqlx::PgPool::connect(url).await.unwrap()),
        }
    }
}

/// What the database holds, in numbers that any stored change would move.
async fn snapshot(db: &Db) -> Vec<i64> {
    const SQL: &str = "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM posts), \
                       (SELECT COUNT(*) FROM votes), (SELECT COUNT(*) FROM sessions), \
                       (SELECT COUNT(*) FROM refresh_tokens), \
                       (SELECT CAST(COALESCE(SUM(LENGTH(title) + LENGTH(content) + votes), 0) \
                        AS BIGINT) FROM posts), \
                       (SELECT CAST(COALESCE(SUM(LENGTH(email) + LENGTH(password_hash)), 0) \
                        AS BIGINT) FROM users), \
                       (SELECT COUNT(*) FROM users WHERE is_active AND NOT is_admin), \
                       (SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL)";
    let columns = |row: &dyn Fn(usize) -> i64| (0..9).map(row).collect::<Vec<i64>>();
    match db {
        Db::Sqlite(pool) => {
            let row = sqlx::query(SQL).fetch_one(pool).await.unwrap();
            columns(&|i| row.get::<i64, _>(i))
        }
        Db::Postgres(pool) => {
            let row = sqlx::query(SQL).fetch_one(pool).await.unwrap();
            columns(&|i| row.get::<i64, _>(i))
        }
    }
}

/// Hostile values for a JSON field of `schema`.
fn hostile_json(schema: &Value) -> Vec<Value> {
    let mut values = vec![Value::Null, json!([]), json!({})];
    match schema["type"].as_str() {
        Some("string") => {
            let max = schema["maxLength"].as_u64().unwrap_or(300) as usize;
            values.extend([
                json!("a\u{0}b"),
                json!("\u{202e}gnp.exe"),
                json!("\u{1b}[31mred"),
                json!(""),
                json!("   "),
                json!("x".repeat(max)),
                json!("x".repeat(max + 1)),
                json!("é".repeat(max + 1)),
                json!(42),
            ]);
        }
        Some("integer") => values.extend([
            json!(i64::MAX),
            json!(i64::MIN),
            json!(-1),
            json!(0),
            json!(1e30),
            json!(1.5),
            json!("1"),
        ]),
        Some("boolean") => values.extend([json!("true"), json!(1)]),
        _ => values.push(json!("a\u{0}b")),
    }
    values
}

/// Hostile raw values for a path segment or a query parameter, percent-encoded.
const HOSTILE_RAW: &[&str] = &[
    "-1",
    "0",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "1e3",
    "abc",
    "%00",
    "a%00b",
    "%E2%80%AE",
    "%ED%A0%80",
    "%FF",
    "",
    "%20%20",
];

/// A JSON body that satisfies `schema`'s types, for the fields the sweep leaves alone.
fn valid_body(schema: &Value) -> Map<String, Value> {
    let mut body = Map::new();
    for (name, field) in schema["properties"].as_object().into_iter().flatten() {
        let value = match (name.as_str(), field["type"].as_str()) {
            (name, _) if name.contains("email") => json!("valid@example.com"),
            (name, _) if name.contains("password") => json!(PASSWORD),
            (_, Some("string")) => json!("valid text"),
            (_, Some("integer")) => json!(1),
            (_, Some("boolean")) => json!(true),
            _ => continue,
        };
        body.insert(name.clone(), value);
    }
    body
}

/// The schema a `$ref` names, or the schema itself.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            &document["components"]["schemas"][name]
        }
        None => schema,
    }
}

struct Sweep<'a> {
    app: &'a TestApp,
    db: Db,
    bearer: String,
    requests: usize,
}

impl Sweep<'_> {
    /// Sends one request and checks the answer.
    async fn send(&mut self, method: &Method, path: &str, content_type: &str, body: Vec<u8>) {
        let before = snapshot(&self.db).await;
        let response = self
            .app
            .client
            .request(method.clone(), path)
            .header("authorization", &self.bearer)
            .content_type(content_type)
            .body(body.clone())
            .send()
            .await;
        self.requests += 1;
        let status = response.0.status();
        let what = format!(
            "{method} {path} with {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(120)
                .collect::<String>()
        );
        assert!(!status.is_server_error(), "{what}: {status}");
        if status != StatusCode::NO_CONTENT {
            let content_type = header(&response, "content-type").unwrap_or_default();
            assert!(
                content_type.starts_with("application/json"),
                "{what}: {status} with content type {content_type:?}"
            );
            let bytes = response.0.into_body().into_bytes().await.unwrap();
            assert!(
                serde_json::from_slice::<Value>(&bytes).is_ok(),
                "{what}: {status} with a body that is not JSON"
            );
        }
        if status.is_client_error() {
            assert_eq!(
                snapshot(&self.db).await,
                before,
                "{what}: {status}, yet something was stored"
            );
        }
    }
}

async fn no_input_of_any_operation_breaks_the_server_or_half_stores(plain: TestApp) {
    // Throttling off: the sweep registers, fails logins and asks for mail many times from one
    // address. Email on, so that its operations do their work rather than answer 501.
    let mut args = vec![
        "--registrations-per-address",
        "0",
        "--login-max-failures-per-username",
        "0",
        "--login-max-failures-per-address",
        "0",
        "--mail-requests-per-address",
        "0",
        "--mail-requests-per-email",
        "0",
    ];
    args.extend(warden_app::testing::UNREACHABLE_MAIL);
    let app = TestApp::on(std::sync::Arc::clone(&plain.db), &args);
    drop(plain);
    let admin = app.admin("root@example.com").await;
    let bob = app.user("bob@example.com").await;
    let post = json_of(
        app.call(
            Method::POST,
            "/posts",
            &admin.bearer,
            Some(json!({"title": "a post", "content": "to be swept"})),
        )
        .await,
    )
    .await;
    let document: Value = serde_json::from_str(&warden_app::api::openapi_json()).unwrap();
    let mut sweep = Sweep {
        app: &app,
        db: Db::connect(app.db.url()).await,
        bearer: admin.bearer.clone(),
        requests: 0,
    };
    // A real id for each path parameter, so that body values are checked against something
    // that exists: Bob for users (not the admin, who cannot lock himself out), the post.
    let real_id = |path: &str| {
        if path.contains("/posts/") {
            post["id"].to_string()
        } else {
            bob.id.to_string()
        }
    };

    for (template, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let concrete = |hostile: Option<(&str, &str)>| {
                let mut path = template.clone();
                let mut query = Vec::new();
                for parameter in &parameters {
                    let name = parameter["name"].as_str().unwrap();
                    let value = match hostile {
                        Some((target, value)) if target == name => value.to_owned(),
                        _ => match parameter["in"].as_str() {
                            Some("path") => real_id(template),
                            _ => continue,
                        },
                    };
                    match parameter["in"].as_str() {
                        Some("path") => path = path.replace(&format!("{{{name}}}"), &value),
                        _ => query.push(format!("{name}={value}")),
                    }
                }
                if query.is_empty() {
                    path
                } else {
                    format!("{path}?{}", query.join("&"))
                }
            };
            let content = &operation["requestBody"]["content"];
            let json_schema = content
                .as_object()
                .into_iter()
                .flatten()
                .find(|(media, _)| media.starts_with("application/json"))
                .map_or(Value::Null, |(_, media)| media["schema"].clone());
            let base_body = if json_schema.is_null() {
                Vec::new()
            } else {
                serde_json::to_vec(&valid_body(resolve(&document, &json_schema))).unwrap()
            };
            let content_type = if content["application/x-www-form-urlencoded"].is_null() {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            };

            // Every path and query parameter, each hostile value, the rest valid.
            for parameter in &parameters {
                let name = parameter["name"].as_str().unwrap();
                for value in HOSTILE_RAW {
                    let path = concrete(Some((name, value)));
                    sweep
                        .send(&method, &path, content_type, base_body.clone())
                        .await;
                }
            }
            let path = concrete(None);

            // Every field of a JSON body, each hostile value, the other fields valid.
            if !json_schema.is_null() {
                let schema = resolve(&document, &json_schema);
                let valid = valid_body(schema);
                for (name, field) in schema["properties"].as_object().into_iter().flatten() {
                    for value in hostile_json(field) {
                        let mut body = valid.clone();
                        body.insert(name.clone(), value);
                        let body = serde_json::to_vec(&body).unwrap();
                        sweep.send(&method, &path, content_type, body).await;
                    }
                }
                let first = valid.keys().next().cloned().unwrap_or_else(|| "x".into());
                let broken: Vec<Vec<u8>> = vec![
                    // Duplicate keys: the first valid, the second hostile.
                    format!(
                        r#"{{"{first}": {}, "{first}": "a\u0000b"}}"#,
                        valid.get(&first).cloned().unwrap_or(Value::Null)
                    )
                    .into_bytes(),
                    // A lone surrogate, escaped.
                    format!(r#"{{"{first}": "\ud800"}}"#).into_bytes(),
                    // Deep nesting.
                    format!(
                        r#"{{"{first}": {}{}}}"#,
                        "[".repeat(20_000),
                        "]".repeat(20_000)
                    )
                    .into_bytes(),
                    // Not UTF-8, not JSON, nothing.
                    vec![b'{', b'"', 0xFF, 0xFE, b'"', b':', b'1', b'}'],
                    b"{\"unterminated".to_vec(),
                    Vec::new(),
                    b"null".to_vec(),
                    b"[]".to_vec(),
                ];
                for body in broken {
                    sweep.send(&method, &path, content_type, body).await;
                }
            }

            // The token endpoint's form: each field with each hostile value.
            if content_type == "application/x-www-form-urlencoded" {
                let fields = [
                    "grant_type",
                    "username",
                    "password",
                    "scope",
                    "refresh_token",
                    "client_id",
                ];
                let long = "x".repeat(2000);
                for field in fields {
                    for value in HOSTILE_RAW.iter().copied().chain([long.as_str()]) {
                        let form = format!(
                            "username=root%40example.com&password=wrong+horse&{field}={value}"
                        );
                        sweep
                            .send(&method, &path, content_type, form.into_bytes())
                            .await;
                    }
                }
            }
        }
    }
    assert!(
        sweep.requests > 300,
        "the sweep sent only {}",
        sweep.requests
    );
}
