//! The wire frame decoder on arbitrary bytes: length prefix, kind, every
//! message body; whatever decodes must encode back to the same bytes.
#![no_main]
use bytes::Bytes;
use ferry::proto::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    if let Ok(Some((msg, used))) = codec::decode(&buf, codec::MAX_FRAME) {
        let again = codec::encode(&msg, codec::MAX_FRAME).expect("a decoded message re-encodes");
        assert_eq!(&again[..], &data[..used], "decode/encode round trip");
    }
});
