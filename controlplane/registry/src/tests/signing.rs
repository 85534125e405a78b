use crate::{keygen, sign, signed_digest, verify, KeyError, PublicKey, SecretKey, SignatureError, Signer, Trust};

const MANIFEST: &[u8] = b"name: p\nversion: 1.0.0\n";
const MODULE: &[u8] = b"\0asm\x01\0\0\0";

fn pair() -> (SecretKey, PublicKey) {
    keygen().expect("the OS gives random bytes")
}

/// `text` with bit `bit` of byte `at` flipped.
fn flipped(bytes: &[u8], at: usize, bit: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 1 << bit;
    b
}

#[test]
fn a_signature_round_trips_and_names_its_key() {
    let (secret, public) = pair();
    let sig = sign(MANIFEST, MODULE, &secret);
    assert!(sig.starts_with(&format!("ms-plugin-signature-v1 {} ", public.id())), "{sig}");
    assert_eq!(verify(MANIFEST, MODULE, &sig, &[public]), Ok(public.id()));
    let (_, other) = pair();
    assert_eq!(verify(MANIFEST, MODULE, &sig, &[other, public]), Ok(public.id()), "any trusted key may be the one");
    assert_eq!(public.id().to_string().len(), 16);
    assert_ne!(pair().1.id(), public.id(), "every key pair is new");
}

#[test]
fn a_flipped_bit_anywhere_is_refused() {
    let (secret, public) = pair();
    let sig = sign(MANIFEST, MODULE, &secret);
    let mismatch = Err(SignatureError::Mismatch { key_id: public.id() });
    for at in [0, MANIFEST.len() - 1] {
        assert_eq!(verify(&flipped(MANIFEST, at, 0), MODULE, &sig, &[public]), mismatch);
    }
    for at in [0, MODULE.len() - 1] {
        assert_eq!(verify(MANIFEST, &flipped(MODULE, at, 7), &sig, &[public]), mismatch);
    }
    // The signature's own hex digits: '0'..'9' and 'a'..'f' flip to other
    // digits or to non-hex, refused either way.
    let sig_digits = sig.len() - 2;
    let bad = String::from_utf8(flipped(sig.as_bytes(), sig_digits, 0)).unwrap();
    assert!(verify(MANIFEST, MODULE, &bad, &[public]).is_err());
    let e = verify(MANIFEST, MODULE, &bad, &[public]).unwrap_err().to_string();
    assert!(e.contains("changed after signing") || e.contains("not a plugin signature"), "{e}");
}

#[test]
fn bytes_cannot_move_between_manifest_and_module() {
    let (secret, public) = pair();
    let sig = sign(b"ab", b"cd", &secret);
    assert!(verify(b"abc", b"d", &sig, &[public]).is_err());
    assert_ne!(signed_digest(b"ab", b"cd"), signed_digest(b"a", b"bcd"));
}

#[test]
fn an_untrusted_key_is_refused_by_id() {
    let (secret, public) = pair();
    let (_, trusted) = pair();
    let sig = sign(MANIFEST, MODULE, &secret);
    let e = verify(MANIFEST, MODULE, &sig, &[trusted]).unwrap_err();
    assert_eq!(e, SignatureError::Untrusted { key_id: public.id() });
    assert!(e.to_string().contains(&format!("signed by key {}, which is not trusted", public.id())), "{e}");
    assert_eq!(verify(MANIFEST, MODULE, &sig, &[]), Err(e));
}

#[test]
fn unsigned_plugins_need_the_policy_to_allow_them() {
    let (secret, public) = pair();
    let strict = Trust { keys: vec![public], allow_unsigned: false };
    assert_eq!(strict.check(MANIFEST, MODULE, None), Err(SignatureError::Unsigned));
    let lax = Trust { keys: vec![public], allow_unsigned: true };
    assert_eq!(lax.check(MANIFEST, MODULE, None), Ok(Signer::Unsigned));
    let sig = sign(MANIFEST, MODULE, &secret);
    assert_eq!(strict.check(MANIFEST, MODULE, Some(&sig)), Ok(Signer::Key(public.id())));
    let e = lax.check(MANIFEST, b"other", Some(&sig));
    assert!(
        matches!(e, Err(SignatureError::Mismatch { .. })),
        "a bad signature is refused even when unsigned is allowed"
    );
}

#[test]
fn key_files_round_trip() {
    let (secret, public) = pair();
    let text = public.to_text();
    assert!(text.starts_with("ms-plugin-key-v1 ") && text.ends_with('\n') && text.len() == 17 + 64 + 1, "{text}");
    assert_eq!(PublicKey::parse(&text).unwrap(), public);
    assert_eq!(PublicKey::parse(text.trim_end()).unwrap(), public, "the line end is optional");
    assert_eq!(PublicKey::parse(&text.replace('\n', "\r\n")).unwrap(), public);
    let s = SecretKey::parse(&secret.to_text()).unwrap();
    assert_eq!(s.to_bytes(), secret.to_bytes());
    assert_eq!(s.public_key(), public);
    assert!(!format!("{secret:?}").contains(&crate::hex::encode(&secret.to_bytes())), "Debug hides the secret");
}

#[test]
fn malformed_key_files_are_refused() {
    let (secret, public) = pair();
    let text = public.to_text();
    let digits = text.trim_end().trim_start_matches("ms-plugin-key-v1 ").to_string();
    let cases = [
        digits.clone(),
        format!("ms-plugin-key-v2 {digits}"),
        format!("ms-plugin-key-v1  {digits}"),
        format!("ms-plugin-key-v1 {}", &digits[..62]),
        format!("ms-plugin-key-v1 {digits}00"),
        format!("ms-plugin-key-v1 {}zz", &digits[..62]),
        format!("{text}{text}"),
        format!("# my key\n{text}"),
        String::new(),
    ];
    for c in &cases {
        let e = PublicKey::parse(c).unwrap_err();
        assert!(matches!(e, KeyError::Malformed { .. }), "{c:?}: {e}");
        assert!(e.to_string().contains("ms-plugin-key-v1"), "{e}");
    }
    let e = PublicKey::parse(&secret.to_text()).unwrap_err();
    assert!(matches!(e, KeyError::WrongKind { .. }) && e.to_string().contains("keep the secret key off"), "{e}");
    let e = SecretKey::parse(&text).unwrap_err();
    assert!(matches!(e, KeyError::WrongKind { .. }), "{e}");
    assert!(matches!(
        SecretKey::parse(&format!("ms-plugin-secret-v1 {}", &digits[..10])),
        Err(KeyError::Malformed { .. })
    ));
    // y = 2 is not on the curve.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    let e = PublicKey::parse(&format!("ms-plugin-key-v1 {}", crate::hex::encode(&not_a_point))).unwrap_err();
    assert!(matches!(e, KeyError::NotAKey), "{e}");
}

#[test]
fn malformed_signature_files_are_refused() {
    let (secret, public) = pair();
    let sig = sign(MANIFEST, MODULE, &secret);
    let body = sig.trim_end().trim_start_matches("ms-plugin-signature-v1 ").to_string();
    let cases = [
        body.clone(),
        format!("ms-plugin-signature-v1 {}", body.replacen(' ', "", 1)),
        format!("ms-plugin-signature-v1 {}", &body[..body.len() - 2]),
        format!("{sig}{sig}"),
        "x".repeat(2000),
    ];
    for c in &cases {
        let e = verify(MANIFEST, MODULE, c, &[public]).unwrap_err();
        assert!(matches!(e, SignatureError::Malformed { .. }), "{c:?}: {e}");
    }
}
