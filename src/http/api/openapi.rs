//! `GET /api/v1/openapi.json`: the API's OpenAPI 3 description, the file
//! `docs/openapi.json` built into the binary.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The document, as shipped.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

pub async fn document() -> Response {
    let mut r = DOCUMENT.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_str(super::DOCUMENT).expect("docs/openapi.json is JSON")
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(s)) => out.push(s),
                        _ => refs(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_route_is_documented_and_every_documented_path_is_routed() {
        let d = doc();
        let paths = d["paths"].as_object().expect("paths");
        let routed: Vec<&str> = super::super::routes().iter().map(|(p, _)| *p).collect();
        for p in &routed {
            assert!(
                paths.contains_key(*p),
                "{p} is routed but not in docs/openapi.json"
            );
        }
        for p in paths.keys() {
            assert!(
                routed.contains(&p.as_str()),
                "{p} is documented but not routed"
            );
        }
    }

    #[test]
    fn the_document_is_valid_openapi_3() {
        let d = doc();
        assert!(d["openapi"].as_str().is_some_and(|v| v.starts_with("3.0.")));
        assert!(d["info"]["title"].is_string() && d["info"]["version"].is_string());
        let methods = [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ];
        for (path, item) in d["paths"].as_object().expect("paths") {
            assert!(path.starts_with('/'), "{path}");
            for (method, op) in item.as_object().expect("path item") {
                assert!(methods.contains(&method.as_str()), "{path}: {method}");
                let responses = op["responses"].as_object().expect("responses");
                assert!(!responses.is_empty(), "{path}");
                for (code, r) in responses {
                    assert!(
                        code == "default" || (code.len() == 3 && code.parse::<u16>().is_ok()),
                        "{path} {code}"
                    );
                    assert!(
                        r["description"].is_string(),
                        "{path} {code}: description is required"
                    );
                }
                // Every `{name}` in the path is a declared, required path parameter.
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                for seg in path.split('/').filter(|s| s.starts_with('{')) {
                    let name = seg.trim_matches(['{', '}']);
                    assert!(
                        params.iter().any(|p| p["name"] == name
                            && p["in"] == "path"
                            && p["required"] == true),
                        "{path}: path parameter {name} is not declared"
                    );
                }
                for p in &params {
                    assert!(p["name"].is_string() && p["in"].is_string(), "{path}: {p}");
                    assert!(p["schema"].is_object(), "{path}: {p} has no schema");
                }
            }
        }
        let mut all = Vec::new();
        refs(&d, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let target = r
                .strip_prefix("#/")
                .expect("local reference")
                .split('/')
                .fold(&d, |v, k| &v[k]);
            assert!(target.is_object(), "{r} does not resolve");
        }
    }
}
