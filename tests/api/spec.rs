//! `api-spec/openapi.yaml` documents exactly the routes weauth registers.

use std::collections::BTreeSet;

#[test]
fn every_registered_route_is_in_the_openapi_spec_and_back() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/api-spec/openapi.yaml"
    ))
    .unwrap();
    let spec: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method) {
                documented.insert((method.to_uppercase(), path.as_str().unwrap().to_string()));
            }
        }
    }
    let registered: BTreeSet<(String, String)> = weauth::api::endpoints()
        .iter()
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect();
    let missing: Vec<_> = registered.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(
        missing.is_empty(),
        "routes missing from api-spec/openapi.yaml: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "api-spec/openapi.yaml documents routes weauth does not serve: {extra:?}"
    );
}
