//! Our signatures, verified by the Standard Webhooks project's own Rust library: an independent
//! implementation of the specification, so a mistake shared by our signer and our tests cannot
//! pass unnoticed.

use http::HeaderMap;
use loyalty_webhooks::signing::{Secret, sign, signature_header};
use proptest::prelude::*;
use standardwebhooks::Webhook;

/// The headers a delivery carries.
fn headers(msg_id: &str, timestamp: i64, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", msg_id.parse().unwrap());
    headers.insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
    headers.insert("webhook-signature", signature.parse().unwrap());
    headers
}

/// The reference library refuses timestamps more than five minutes from its clock.
fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn verifier(secret: &Secret) -> Webhook {
    Webhook::new(&secret.expose()).expect("the reference library reads our secret's text form")
}

const PAYLOAD: &[u8] = br#"{"id":"msg_1","type":"member.enrolled","version":1,"data":{}}"#;

#[test]
fn given_one_secret_when_a_message_is_signed_then_the_reference_library_verifies_it() {
    let secret = Secret::generate();
    let ts = now();
    let header = signature_header(&[&secret], "msg_1", ts, PAYLOAD);
    verifier(&secret)
        .verify(PAYLOAD, &headers("msg_1", ts, &header))
        .expect("verifies");
}

#[test]
fn given_our_signature_then_it_equals_the_reference_librarys_signature() {
    let secret = Secret::generate();
    let ts = now();
    let reference = verifier(&secret).sign("msg_1", ts, PAYLOAD).unwrap();
    assert_eq!(sign(&secret, "msg_1", ts, PAYLOAD), reference);
}

#[test]
fn given_a_secret_from_the_specifications_example_then_it_parses_and_signs_alike() {
    // The secret of the specification's own examples (24 bytes).
    let text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let secret = Secret::parse(text).unwrap();
    assert_eq!(secret.expose(), text);
    let ts = now();
    let reference = Webhook::new(text)
        .unwrap()
        .sign("msg_p5jXN8AQM9LWM0D4loKWxJek", ts, PAYLOAD);
    assert_eq!(
        sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, PAYLOAD),
        reference.unwrap()
    );
}

#[test]
fn given_a_rotation_when_both_secrets_sign_then_a_receiver_knowing_either_one_verifies() {
    let (old, new) = (Secret::generate(), Secret::generate());
    let ts = now();
    let header = signature_header(&[&new, &old], "msg_2", ts, PAYLOAD);
    assert_eq!(
        header.split(' ').count(),
        2,
        "one signature per secret: {header}"
    );
    let headers = headers("msg_2", ts, &header);
    verifier(&old)
        .verify(PAYLOAD, &headers)
        .expect("the old secret verifies");
    verifier(&new)
        .verify(PAYLOAD, &headers)
        .expect("the new secret verifies");
    assert!(
        verifier(&Secret::generate())
            .verify(PAYLOAD, &headers)
            .is_err(),
        "a third secret does not"
    );
}

#[test]
fn given_a_tampered_payload_timestamp_or_id_then_verification_fails() {
    let secret = Secret::generate();
    let ts = now();
    let header = signature_header(&[&secret], "msg_3", ts, PAYLOAD);
    let webhook = verifier(&secret);
    let tampered = br#"{"id":"msg_1","type":"member.enrolled","version":1,"data":{"x":1}}"#;
    assert!(
        webhook
            .verify(tampered, &headers("msg_3", ts, &header))
            .is_err()
    );
    assert!(
        webhook
            .verify(PAYLOAD, &headers("msg_3", ts - 1, &header))
            .is_err()
    );
    assert!(
        webhook
            .verify(PAYLOAD, &headers("msg_4", ts, &header))
            .is_err()
    );
    webhook
        .verify(PAYLOAD, &headers("msg_3", ts, &header))
        .expect("the untouched message still verifies");
}

proptest! {
    #[test]
    fn any_payload_and_id_we_sign_verifies_with_the_reference_library(
        payload in "\\PC{0,512}",
        id in "msg_[0-9a-f]{1,32}",
        seed in proptest::collection::vec(any::<u8>(), 24..=64),
    ) {
        let secret = Secret::from_bytes(seed.clone()).unwrap();
        let ts = now();
        let header = signature_header(&[&secret], &id, ts, payload.as_bytes());
        let webhook = Webhook::from_bytes(seed).unwrap();
        prop_assert!(webhook.verify(payload.as_bytes(), &headers(&id, ts, &header)).is_ok());
        let other = format!("{payload}!");
        prop_assert!(webhook.verify(other.as_bytes(), &headers(&id, ts, &header)).is_err());
    }
}
