use chrono::Utc;
use serde_json::json;

use super::*;

fn template(channel: Channel, subject: Option<&str>, body: &str) -> Template {
    email_template(channel, subject, body, None)
}

fn email_template(
    channel: Channel,
    subject: Option<&str>,
    body: &str,
    html_body: Option<&str>,
) -> Template {
    let variables = required_variables(subject, body, html_body).unwrap();
    Template {
        id: Uuid::now_v7(),
        tenant_id: Uuid::now_v7(),
        name: "t".into(),
        channel: channel.as_str().into(),
        locale: "en".into(),
        subject: subject.map(str::to_owned),
        body: body.into(),
        variables: variables.into_iter().map(Some).collect(),
        status: "APPROVED".into(),
        provider_template_name: None,
        version: 1,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        deleted_at: None,
        html_body: html_body.map(str::to_owned),
    }
}

fn vars(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[test]
fn variables_are_the_top_level_names_read_sorted_without_loop_locals_or_globals() {
    let names = required_variables(
        Some("Order {{ order.id }} for {{ name }}"),
        "{% for item in items %}{{ item }} {{ loop.index }}{% endfor %}{% set x = 1 %}{{ x }}\
         {% for i in range(3) %}{{ i }}{% endfor %}{{ name | upper }}",
        Some("<p>{{ footer }}</p>"),
    )
    .unwrap();
    assert_eq!(names, ["footer", "items", "name", "order"]);
}

#[test]
fn a_template_that_does_not_compile_names_its_field() {
    let err = required_variables(None, "Hi {{ name ", None).unwrap_err();
    assert_eq!(err.field, "body");
    let err = required_variables(Some("{% if %}"), "ok", None).unwrap_err();
    assert_eq!(err.field, "subject");
}

#[test]
fn rendering_fills_every_variable() {
    let t = template(Channel::Sms, None, "Hi {{ name }}, code {{ code }}");
    let out = render(
        &t,
        &vars(json!({"name": "Ada", "code": 1234, "extra": true})),
    )
    .unwrap();
    assert_eq!(out.body, "Hi Ada, code 1234");
    assert_eq!(out.subject, None);
}

#[test]
fn missing_or_null_variables_are_listed_sorted() {
    let t = template(Channel::Email, Some("{{ subject_line }}"), "{{ b }}{{ a }}");
    let err = render(&t, &vars(json!({"a": null}))).unwrap_err();
    assert_eq!(
        err,
        RenderError::Missing(vec!["a".into(), "b".into(), "subject_line".into()])
    );
    let api: ApiError = err.into();
    assert_eq!(api.code, ErrorCode::TemplateVariablesMissing);
    assert_eq!(api.details.unwrap()[0], json!({"variable": "a"}));
}

#[test]
fn only_the_html_part_of_an_email_is_html_escaped() {
    let v = vars(json!({"name": "<b>Tom & Jerry</b>"}));
    let email = email_template(
        Channel::Email,
        Some("Hi {{ name }}"),
        "Hi {{ name }}",
        Some("<p>{{ name }}</p>"),
    );
    let out = render(&email, &v).unwrap();
    assert_eq!(
        out.html_body.as_deref(),
        Some("<p>&lt;b&gt;Tom &amp; Jerry&lt;&#x2f;b&gt;</p>")
    );
    assert_eq!(out.body, "Hi <b>Tom & Jerry</b>");
    assert_eq!(out.subject.as_deref(), Some("Hi <b>Tom & Jerry</b>"));
    let sms = template(Channel::Sms, None, "Hi {{ name }}");
    assert_eq!(render(&sms, &v).unwrap().body, "Hi <b>Tom & Jerry</b>");
}

#[test]
fn an_email_without_a_plain_part_gets_one_from_its_html_with_no_tags_or_entities() {
    let v = vars(json!({"name": "Tom & Jerry", "tag": "<b>"}));
    let email = email_template(
        Channel::Email,
        Some("Tickets"),
        "",
        Some("<h1>Hello {{ name }}</h1><p>Your &amp; our <em>tickets</em> {{ tag }}</p>"),
    );
    let out = render(&email, &v).unwrap();
    assert!(out.body.contains("Hello Tom & Jerry"), "{}", out.body);
    assert!(
        out.body.contains("<b>"),
        "the variable's text, unescaped: {}",
        out.body
    );
    assert!(
        !out.body.contains("&amp;") && !out.body.contains("<h1>"),
        "{}",
        out.body
    );
    assert!(!out.body.contains("&lt;"), "{}", out.body);
}

#[test]
fn a_nested_lookup_that_is_undefined_fails_instead_of_printing_nothing() {
    let t = template(Channel::Sms, None, "Hi {{ user.name }}");
    let err = render(&t, &vars(json!({"user": {}}))).unwrap_err();
    assert!(matches!(err, RenderError::Invalid(_)), "{err:?}");
}

#[test]
fn runaway_templates_run_out_of_fuel() {
    let t = template(
        Channel::Sms,
        None,
        "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}",
    );
    let err = render(&t, &Map::new()).unwrap_err();
    assert!(
        matches!(err, RenderError::Invalid(ref m) if m.contains("more work")),
        "{err:?}"
    );
}

#[test]
fn locales_are_checked_for_shape() {
    for ok in ["en", "en-GB", "pt_BR", "es-419", "fil"] {
        assert!(check_locale(ok).is_ok(), "{ok}");
    }
    for bad in ["", "EN", "english", "en-", "en-GBR", "e", "en GB", "en-G1"] {
        assert!(check_locale(bad).is_err(), "{bad}");
    }
}
