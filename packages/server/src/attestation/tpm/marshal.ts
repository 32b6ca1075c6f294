// Big-endian TPM 2.0 marshalling (Part 1 §18): a bounds-checked reader and the few writers MakeCredential needs.
import { TpmFormatError } from './errors.ts';

/** Reads a TPM structure front to back; every read past the end throws a TpmFormatError naming the field. */
export class TpmReader {
  private offset = 0;
  constructor(
    private readonly bytes: Buffer,
    /** The structure being read, e.g. `TPMT_PUBLIC`: prefixes every field name in errors. */
    private readonly structure: string,
  ) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  /** The bytes read so far (e.g. the TPMT_PUBLIC inside a TPM2B_PUBLIC). */
  consumed(from: number): Buffer {
    return this.bytes.subarray(from, this.offset);
  }

  get position(): number {
    return this.offset;
  }

  fail(field: string, detail: string): never {
    throw new TpmFormatError(`${this.structure}.${field}`, detail);
  }

  private take(field: string, length: number): Buffer {
    if (length > this.remaining) {
      this.fail(field, `truncated (needs ${length} bytes at offset ${this.offset}, ${this.remaining} left)`);
    }
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  u8(field: string): number {
    return this.take(field, 1).readUInt8(0);
  }

  u16(field: string): number {
    return this.take(field, 2).readUInt16BE(0);
  }

  u32(field: string): number {
    return this.take(field, 4).readUInt32BE(0);
  }

  u64(field: string): bigint {
    return this.take(field, 8).readBigUInt64BE(0);
  }

  bytesOf(field: string, length: number): Buffer {
    return Buffer.from(this.take(field, length));
  }

  /** A TPM2B: u16 size, then that many bytes. `max` bounds the size where Part 2 does. */
  tpm2b(field: string, max?: number): Buffer {
    const size = this.u16(`${field}.size`);
    if (max !== undefined && size > max) this.fail(`${field}.size`, `${size} exceeds the maximum ${max}`);
    return this.bytesOf(field, size);
  }

  /** The structure must end here: trailing bytes mean the input is not what it claims to be. */
  end(field = 'end'): void {
    if (this.remaining !== 0) this.fail(field, `${this.remaining} unexpected trailing bytes`);
  }
}

export function u16be(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value);
  return out;
}

export function u32be(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}

/** A TPM2B: u16 size || bytes. */
export function tpm2b(bytes: Buffer): Buffer {
  if (bytes.length > 0xffff) throw new RangeError(`TPM2B of ${bytes.length} bytes`);
  return Buffer.concat([u16be(bytes.length), bytes]);
}
