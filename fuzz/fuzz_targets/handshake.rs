#![no_main]

//! Feeds arbitrary bytes, in pieces, to both handshake sides: no input may panic, and whatever
//! the pieces, the bytes consumed never run past the end of the handshake.

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use weir_rtmp::handshake::{ClientHandshake, ServerHandshake, HANDSHAKE_SIZE};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the piece size, so splits get explored as well as contents.
    let Some((&piece, data)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1) * 7;

    let mut server = ServerHandshake::new([0x5a; 1528], 0);
    let mut client = ClientHandshake::new([0xa5; 1528], 0, piece % 2 == 0);
    let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
    let mut server_result = Ok(false);
    let mut client_result = Ok(false);
    for chunk in data.chunks(piece) {
        to_server.extend_from_slice(chunk);
        to_client.extend_from_slice(chunk);
        server_result = server.handle_input(&mut to_server);
        client_result = client.handle_input(&mut to_client);
        let _ = server.poll_transmit();
        let _ = client.poll_transmit();
    }
    let whole = 1 + 2 * HANDSHAKE_SIZE;
    if data.len() >= whole && data[0] == 0x03 {
        assert_eq!(server_result, Ok(true));
        assert_eq!(client_result, Ok(true));
        assert_eq!(to_server.len(), data.len() - whole);
        assert_eq!(to_client.len(), data.len() - whole);
        assert!(server.style().is_some());
    } else {
        assert_ne!(server_result, Ok(true));
        assert_ne!(client_result, Ok(true));
    }
});
