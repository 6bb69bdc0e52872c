//! Chunks written by the first version of the `store` format (before the packed-integer forms)
//! must keep decoding to the same samples: the bytes below were produced by that encoder.

use telemetry_compress::decode_store_chunk;

const OLD: &[(&str, &str)] = &[
    ("const", "1478c4ef88e2bf68d00f02"),
    ("constf", "1178c4ef88e2bf68d00f9a9999999999b93f"),
    (
        "counter",
        "4378c4ef88e2bf68d00f04050525052505250500000100a09c010402888888888888888888888888888888888888888888888888888888888888",
    ),
    (
        "dec",
        "1378c4ef88e2bf68d00f0e0c0000fca5010406c5b4a39281706c5b4a39281706c5b4a39281706c5b4a39281706c5b4a39281706c5b4a39281706c5b4a39281706c5b4a39281706c5b4a39281706c",
    ),
    (
        "odd",
        "337802c4ef88e2bf68880f8e1d085b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb6005b5b5b5b5bb60e0c000207000000000000f87f020000000000000080fca5010406c5b4aa9981706c5b4a39281706c5b4a39281706c5b4a39281706c5b4a39281706c5b4a39281706c5b4a39281706c5b4a39281706c5b4a39281706c",
    ),
    (
        "noise",
        "4278c4ef88e2bf68d00f0405052505250525053ff0000000000000d9a4f1bbcdcbfa53d44b3159703bd173644f2f41a5c544f7179301ed137e4433d40aecd44b3758f0f95173644725405bc5447f33b302b513f24452741e6dd43b30d7702ed171247de3406dc54df71c931e9d131244d6d40dacd5fb30c9f01b51712444fd41a7c54c6f749303f51316c476343aafd3c9334b7019d150fc43e740ddc5c497157306ad1536cbf254066ccc491138f02f51571fcd2d4febc5c7910d9302951532cc53f405edcc5917f9707ad15f3dc52340a5c5c3910db301fd1512ccd2543aacccd91137f03951511bff65405fc5dcb114b30695151e4c3e340eb3cccf134971efb15165c77f4065453cb1749302af170e4c4ed41dd4d44710c8f019b13327cd6540ab4545b11f730ff717724bd2740a75d47f70db701ab13324452341dd4545b33393029f17f24473d406d4d446f759f7eeb130ec432d40e7454c93179306b71717c4f23405b455c971577039bf31ec7ce743ad454c930cb301ef1711c456540a5453d9f3c8f07bb3512c45fd405b44c3930c9302971533c5d6f47ef45c5971c9702eb7572c4ce3406544c793157306bf1531c432540e545c4aef7bf016b35f64c72543af44c4f135f30397150e5c32341bb45ccb1139701b4f5164dd2f40a6c4dc711d933f6d15127cddd406dc5cfb10c8f029d35124c56541fac53df1fcb302b513125c4e74067c543b134f70f7577324c36340aac544711493019d1376bdfed41bdc54491149f03ad373fcc35d47a6c544913393017513f6dc52340ebc54492fdb70695f731c4527407ec5439f0ff302ad1312c4d2543e5c55d931d8f017d3713c5d2d40aac54f97139307951312c435f40bfc53d93349701957511c47e37faac5ccaff4b3037d150e443654065c4c4f314ff06ad357644ce540fec5c4b71cb30e95153e45d63406bc4c4730c97037515f2445df41a73dc5bf3d9301ab15324452d40bd44c3f2f38f1f9f15125c32540ad4dddb115f3016b15124cf2741e744cc7117b702b7151ebc323407b5d3c9175930e9b1717cc4dd40ed454c913c9f016f130edc56d41a54d44910c9303bb1771cfde34fbb4545911cf701971332fcd6740af7d47910cb3076b17f3cc4e54065454591748f02bf1332dc75d43e548",
    ),
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn inputs(name: &str) -> (Vec<i64>, Vec<f64>) {
    let ts: Vec<i64> = (0..120).map(|i| 1_795_264_945_122 + i * 1000).collect();
    let jit: Vec<i64> = ts.iter().enumerate().map(|(i, t)| t + if i % 37 == 5 { -3 } else { 0 }).collect();
    let wild: Vec<i64> = (0..120).map(|i: i64| 1_795_264_945_122 + i * i * 977 - (i % 7) * 13).collect();
    let counter: Vec<f64> = (0..120).map(|i| (10_000 + i * 3 + i % 2) as f64).collect();
    let dec: Vec<f64> = (0..120).map(|i| (10_622 + i * 97 % 13) as f64 / 100.0).collect();
    let noise: Vec<f64> = (0..120u64)
        .map(|i| f64::from_bits(0x3ff0_0000_0000_0000 ^ (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 12)))
        .collect();
    let mut odd = dec.clone();
    odd[7] = f64::NAN;
    odd[9] = -0.0;
    match name {
        "const" => (ts, vec![1.0; 120]),
        "constf" => (ts, vec![0.1; 120]),
        "counter" => (jit, counter),
        "dec" => (ts, dec),
        "odd" => (wild, odd),
        "noise" => (jit, noise),
        _ => unreachable!(),
    }
}

#[test]
fn first_version_chunks_still_decode() {
    let mut kinds = Vec::new();
    for (name, hex) in OLD {
        let bytes = unhex(hex);
        kinds.push(bytes[0]);
        let (ts, vs) = inputs(name);
        let (mut t2, mut v2) = (Vec::new(), Vec::new());
        decode_store_chunk(&bytes, &mut t2, &mut v2).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t2, ts, "{name}");
        assert_eq!(
            v2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{name}"
        );
    }
    // Regular, grid and packed timestamps; constant, constant-integer, scaled-integer and XOR values.
    kinds.sort_unstable();
    assert_eq!(kinds, [0x11, 0x13, 0x14, 0x33, 0x42, 0x43]);
}
