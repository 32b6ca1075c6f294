import { describe, expect, it } from 'vitest';
import { Framer } from './framing.ts';

const limits = { maxPacketBytes: 1000, maxConnectBytes: 100 };

describe('Framer', () => {
  it('hands out whole packets, whatever the chunking', () => {
    const bytes = Buffer.from([0x30, 0x03, 0x00, 0x01, 0x74, 0xc0, 0x00]);
    for (let split = 1; split < bytes.length; split++) {
      const framer = new Framer(limits);
      framer.push(bytes.subarray(0, split));
      const first = framer.next();
      if (split < 5) expect(first).toBeUndefined();
      framer.push(bytes.subarray(split));
      const frames = [first ?? framer.next(), framer.next()].filter(Boolean);
      expect(frames.map((f) => f?.kind === 'packet' && [...f.bytes])).toEqual([
        [0x30, 0x03, 0x00, 0x01, 0x74],
        [0xc0, 0x00],
      ]);
      expect(framer.next()).toBeUndefined();
      expect(framer.length).toBe(0);
    }
  });

  it('refuses a packet over its limit at the fixed header, before the body arrives (CONNECT has its own)', () => {
    const framer = new Framer(limits);
    framer.push(Buffer.from([0x30, 0xe9, 0x07])); // 1001
    expect(framer.next()).toEqual({ kind: 'too-large', type: 3, length: 1001, limit: 1000 });
    const connect = new Framer(limits);
    connect.push(Buffer.from([0x10, 0x65])); // 101
    expect(connect.next()).toEqual({ kind: 'too-large', type: 1, length: 101, limit: 100 });
  });

  it('§1.5.5 a remaining length of more than four bytes is malformed', () => {
    const framer = new Framer({ maxPacketBytes: 1e9, maxConnectBytes: 1e9 });
    framer.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    expect(framer.next()).toMatchObject({ kind: 'malformed' });
  });
});
