//! U+0000 everywhere: every operation of the published OpenAPI spec is called with U+0000 in each
//! of its string path and query parameters in turn, and with a JSON body whose every string holds
//! it. Postgres text cannot hold U+0000, so each such value must be made storable or refused with
//! a 4xx that says so; no answer may be a 5xx. The walk reads the spec, so a new endpoint is
//! walked without this file changing.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestApp;
use serde_json::{json, Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const NUL_TEXT: &str = "a\u{0}b";

/// Resolves `#/components/schemas/…` references.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &spec["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// A value of `schema` whose every string is `text` (an enum's first member stays, so the value
/// gets past the enum check to whatever reads the rest).
fn sample(spec: &Value, schema: &Value, text: &str, depth: usize) -> Value {
    let schema = resolve(spec, schema);
    if depth > 6 {
        return Value::Null;
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        if let Some(first) = schema.get(combinator).and_then(|v| v.get(0)) {
            return sample(spec, first, text, depth + 1);
        }
    }
    if let Some(first) = schema.get("enum").and_then(|v| v.get(0)) {
        return first.clone();
    }
    let minimum = schema.get("minimum").and_then(Value::as_f64).unwrap_or(1.0);
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2026-01-01T00:00:00Z"),
            _ => json!(text),
        },
        Some("integer") => json!(minimum.max(0.0) as i64),
        Some("number") => json!(minimum),
        Some("boolean") => json!(false),
        Some("array") => {
            let item = schema.get("items").cloned().unwrap_or(Value::Null);
            json!([sample(spec, &item, text, depth + 1)])
        }
        Some("object") | None if schema.get("properties").is_some() => {
            let mut object = Map::new();
            for (name, property) in schema["properties"].as_object().unwrap() {
                object.insert(name.clone(), sample(spec, property, text, depth + 1));
            }
            Value::Object(object)
        }
        Some("object") => json!({"key": text}),
        _ => json!(text),
    }
}

fn is_string(spec: &Value, parameter: &Value) -> bool {
    resolve(spec, &parameter["schema"])
        .get("type")
        .and_then(Value::as_str)
        == Some("string")
}

#[sqlx::test(migrations = "../migrations")]
async fn no_endpoint_answers_5xx_to_u0000_in_any_string(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with(
        sentinel_api::Config {
            max_body_bytes: 1024 * 1024,
            ..common::config()
        },
        options,
    )
    .await;
    let (tenant, key) = app
        .tenant_with(json!({"name": "nul", "rate_limit_per_sec": 100000, "burst": 100000}))
        .await;
    let source = app
        .source(
            &key,
            "telegram",
            json!({"secret_token": "0123456789abcdef"}),
        )
        .await;
    let job = app
        .post(&key, "/v1/jobs", json!({"kind": "nul.job", "input": {}}))
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let spec: Value = serde_json::from_str(&sentinel_api::openapi_json()).unwrap();
    let valid = |name: &str, parameter: &Value| -> String {
        let schema = resolve(&spec, &parameter["schema"]);
        match (name, schema.get("format").and_then(Value::as_str)) {
            ("id", Some("uuid")) | ("source_id", _) => source.to_string(),
            ("tenant_id", _) => tenant.to_string(),
            (_, Some("uuid")) => source.to_string(),
            (_, Some("int64" | "int32")) | (_, None)
                if schema.get("type").and_then(Value::as_str) == Some("integer") =>
            {
                job.to_string()
            }
            _ => "valid.kind".to_owned(),
        }
    };

    let mut calls = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let parameters: Vec<Value> = operation
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let body_schema = operation
                .pointer("/requestBody/content/application~1json/schema")
                .cloned();
            // One variant per string parameter, with U+0000 in it alone, and one with the body's
            // strings holding it.
            let mut variants: Vec<Option<usize>> = parameters
                .iter()
                .enumerate()
                .filter(|(_, p)| p["in"] != "header" && is_string(&spec, p))
                .map(|(i, _)| Some(i))
                .collect();
            variants.push(None);
            for nul_at in variants {
                let mut url_path = path.clone();
                let mut query = Vec::new();
                for (i, parameter) in parameters.iter().enumerate() {
                    let name = parameter["name"].as_str().unwrap();
                    let value = if nul_at == Some(i) {
                        NUL_TEXT.to_owned()
                    } else {
                        valid(name, parameter)
                    };
                    match parameter["in"].as_str().unwrap() {
                        "path" => {
                            let encoded: String =
                                form_urlencoded::byte_serialize(value.as_bytes()).collect();
                            url_path = url_path.replace(&format!("{{{name}}}"), &encoded);
                        }
                        "query" if nul_at == Some(i) || parameter["required"] == true => {
                            query.push((name.to_owned(), value));
                        }
                        _ => {}
                    }
                }
                let token = if path.starts_with("/v1/admin") {
                    common::ADMIN_TOKEN
                } else {
                    key.as_str()
                };
                let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let mut request = app
                    .client
                    .request(method.clone(), app.url(&url_path))
                    .query(&query)
                    .bearer_auth(token);
                if let Some(schema) = &body_schema {
                    let text = if nul_at.is_none() { NUL_TEXT } else { "plain" };
                    request = request.json(&sample(&spec, schema, text, 0));
                }
                let response =
                    tokio::time::timeout(std::time::Duration::from_secs(10), request.send())
                        .await
                        .unwrap_or_else(|_| panic!("{method} {url_path} did not answer"))
                        .unwrap();
                let status = response.status();
                assert!(
                    !status.is_server_error(),
                    "{method} {url_path} {query:?} answered {status}: {}",
                    response.text().await.unwrap_or_default()
                );
                calls += 1;
            }
        }
    }
    assert!(
        calls > 40,
        "only {calls} calls were made: is the spec read?"
    );

    // The named checks: a query value and a path segment with U+0000 say where it was.
    let response = app.get(&key, "/v1/jobs?kind=a%00b").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_text");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("\"kind\""));
    // A bulk replay's filter and a claim's worker id: refused or made storable, never a 500.
    let replay = app
        .post(
            &key,
            "/v1/jobs/replay",
            json!({"filter": {"kind": NUL_TEXT}, "dry_run": false}),
        )
        .await;
    assert_eq!(replay.status(), 400, "{}", replay.text().await.unwrap());
    app.post(
        &key,
        "/v1/jobs",
        json!({"kind": "nul.claim", "input": {"t": NUL_TEXT}}),
    )
    .await;
    let claimed: Value = app
        .post(
            &key,
            "/v1/worker/claim",
            json!({"kinds": ["nul.claim"], "worker_id": NUL_TEXT}),
        )
        .await
        .json()
        .await
        .unwrap();
    let claimed = &claimed["jobs"][0];
    assert_eq!(claimed["input"]["t"], "a\u{FFFD}b");
    let done = app
        .post(
            &key,
            &format!("/v1/worker/jobs/{}/complete", claimed["id"]),
            json!({"lease": claimed["lease"]}),
        )
        .await;
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    app.stop().await;
}
