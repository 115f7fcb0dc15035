import { SdError } from '@sd/sys';

/**
 * The D-Bus wire format (little-endian), for the small client in
 * connection.ts: signatures parsed into type trees, values marshalled and
 * unmarshalled with D-Bus alignment. Values as dbus-next gives them, so that
 * callers see no difference: 64-bit integers as bigint, `ay` as a Buffer,
 * dicts as objects, structs as arrays; a variant's value as it is (its
 * signature dropped), and marshalled from a `{ signature, value }`. Unix fds
 * (`h`) are not supported: the callers that pass fds use dbus-next.
 *
 * Input from the bus is checked as systemd's bus-message.c checks it: a
 * malformed message is a BusWireError, never a crash, a hang or a huge
 * allocation (array lengths are bounded by the buffer, nesting by the
 * spec's limits).
 */

export class BusWireError extends SdError {
  constructor(message: string) {
    super('EBADMSG', `Malformed D-Bus message: ${message}`);
  }
}

export type BusType =
  | { t: 'y' | 'b' | 'n' | 'q' | 'i' | 'u' | 'x' | 't' | 'd' | 's' | 'o' | 'g' | 'v' }
  | { t: 'a'; of: BusType }
  | { t: '('; of: BusType[] }
  | { t: '{'; key: BusType; value: BusType };

const BASIC = 'ybnqiuxtdsog';
const MAX_SIGNATURE = 255;
const MAX_DEPTH = 64;
const MAX_ARRAY = 64 * 1024 * 1024;

/** A signature as a list of complete types. */
export function parseSignature(sig: string): BusType[] {
  if (sig.length > MAX_SIGNATURE) throw new BusWireError(`signature longer than ${MAX_SIGNATURE}`);
  let i = 0;
  const one = (depth: number): BusType => {
    if (depth > MAX_DEPTH) throw new BusWireError(`signature ${JSON.stringify(sig)} nests too deep`);
    const c = sig[i++];
    if (c === undefined) throw new BusWireError(`signature ${JSON.stringify(sig)} ends inside a type`);
    if (BASIC.includes(c) || c === 'v') return { t: c } as BusType;
    if (c === 'a') {
      if (sig[i] === '{') {
        i++;
        const key = one(depth + 1);
        if (!BASIC.includes(key.t)) throw new BusWireError(`dict key of ${JSON.stringify(sig)} is not basic`);
        const value = one(depth + 1);
        if (sig[i++] !== '}') throw new BusWireError(`dict entry of ${JSON.stringify(sig)} is not closed`);
        return { t: 'a', of: { t: '{', key, value } };
      }
      return { t: 'a', of: one(depth + 1) };
    }
    if (c === '(') {
      const of: BusType[] = [];
      while (sig[i] !== ')') {
        if (i >= sig.length) throw new BusWireError(`struct of ${JSON.stringify(sig)} is not closed`);
        of.push(one(depth + 1));
      }
      i++;
      if (of.length === 0) throw new BusWireError(`empty struct in ${JSON.stringify(sig)}`);
      return { t: '(', of };
    }
    throw new BusWireError(`unsupported type ${JSON.stringify(c)} in signature ${JSON.stringify(sig)}`);
  };
  const out: BusType[] = [];
  while (i < sig.length) out.push(one(0));
  return out;
}

const alignOf = (t: BusType): number => {
  switch (t.t) {
    case 'y':
    case 'g':
    case 'v':
      return 1;
    case 'n':
    case 'q':
      return 2;
    case 'x':
    case 't':
    case 'd':
    case '(':
    case '{':
      return 8;
    default:
      return 4;
  }
};

/** Appends marshalled values; offsets count from the start of the buffer (message or body, both 8-aligned). */
export class Writer {
  #buf = Buffer.alloc(256);
  #len = 0;
  get length(): number {
    return this.#len;
  }
  bytes(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }
  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const b = Buffer.alloc(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(b, 0, 0, this.#len);
    this.#buf = b;
  }
  align(n: number): void {
    const pad = (n - (this.#len % n)) % n;
    this.#room(pad);
    this.#buf.fill(0, this.#len, this.#len + pad);
    this.#len += pad;
  }
  raw(b: Uint8Array): void {
    this.#room(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }
  u32At(offset: number, v: number): void {
    this.#buf.writeUInt32LE(v, offset);
  }
  write(t: BusType, v: unknown, depth = 0): void {
    if (depth > MAX_DEPTH) throw new BusWireError('value nests too deep');
    this.align(alignOf(t));
    const bad = () => new SdError('EINVAL', `Cannot marshal ${typeof v} as D-Bus type ${t.t}`);
    switch (t.t) {
      case 'y':
        this.#room(1);
        this.#buf.writeUInt8(Number(v), this.#len);
        this.#len += 1;
        return;
      case 'b':
        if (typeof v !== 'boolean') throw bad();
        this.#room(4);
        this.#buf.writeUInt32LE(v ? 1 : 0, this.#len);
        this.#len += 4;
        return;
      case 'n':
      case 'q':
        this.#room(2);
        if (t.t === 'n') this.#buf.writeInt16LE(Number(v), this.#len);
        else this.#buf.writeUInt16LE(Number(v), this.#len);
        this.#len += 2;
        return;
      case 'i':
      case 'u':
        this.#room(4);
        if (t.t === 'i') this.#buf.writeInt32LE(Number(v), this.#len);
        else this.#buf.writeUInt32LE(Number(v), this.#len);
        this.#len += 4;
        return;
      case 'x':
      case 't':
        if (typeof v !== 'bigint' && typeof v !== 'number') throw bad();
        this.#room(8);
        if (t.t === 'x') this.#buf.writeBigInt64LE(BigInt(v), this.#len);
        else this.#buf.writeBigUInt64LE(BigInt(v), this.#len);
        this.#len += 8;
        return;
      case 'd':
        this.#room(8);
        this.#buf.writeDoubleLE(Number(v), this.#len);
        this.#len += 8;
        return;
      case 's':
      case 'o':
      case 'g': {
        if (typeof v !== 'string') throw bad();
        const b = Buffer.from(v, 'utf8');
        if (b.includes(0)) throw new SdError('EINVAL', 'A D-Bus string cannot hold a NUL byte');
        if (t.t === 'g') {
          if (b.length > MAX_SIGNATURE) throw new BusWireError('signature too long');
          this.write({ t: 'y' }, b.length);
        } else this.write({ t: 'u' }, b.length);
        this.raw(b);
        this.raw(Buffer.of(0));
        return;
      }
      case 'v': {
        const variant = v as { signature?: unknown; value?: unknown };
        if (typeof variant?.signature !== 'string') throw bad();
        const types = parseSignature(variant.signature);
        if (types.length !== 1) throw new SdError('EINVAL', 'A variant holds exactly one complete type');
        this.write({ t: 'g' }, variant.signature);
        this.write(types[0]!, variant.value, depth + 1);
        return;
      }
      case 'a': {
        this.align(4);
        const at = this.#len;
        this.write({ t: 'u' }, 0);
        this.align(alignOf(t.of));
        const start = this.#len;
        if (t.of.t === 'y' && v instanceof Uint8Array) this.raw(v);
        else if (t.of.t === '{') {
          if (v === null || typeof v !== 'object') throw bad();
          const entries = v instanceof Map ? [...v] : Object.entries(v);
          for (const [k, val] of entries) {
            this.align(8);
            this.write(t.of.key, k, depth + 1);
            this.write(t.of.value, val, depth + 1);
          }
        } else {
          if (!Array.isArray(v)) throw bad();
          for (const e of v) this.write(t.of, e, depth + 1);
        }
        this.u32At(at, this.#len - start);
        return;
      }
      case '(': {
        if (!Array.isArray(v) || v.length !== t.of.length) throw bad();
        t.of.forEach((f, i) => {
          this.write(f, v[i], depth + 1);
        });
        return;
      }
      case '{':
        throw bad();
    }
  }
}

/** Reads marshalled values from a buffer whose offset 0 is 8-aligned in the message. */
export class Reader {
  readonly buf: Buffer;
  pos: number;
  constructor(buf: Buffer, pos = 0) {
    this.buf = buf;
    this.pos = pos;
  }
  #need(n: number): void {
    if (this.pos + n > this.buf.length) throw new BusWireError('value runs past the end');
  }
  align(n: number): void {
    const pad = (n - (this.pos % n)) % n;
    this.#need(pad);
    for (let i = 0; i < pad; i++)
      if (this.buf[this.pos + i] !== 0) throw new BusWireError('non-zero padding');
    this.pos += pad;
  }
  #u32(): number {
    this.align(4);
    this.#need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  #string(len: number): string {
    this.#need(len + 1);
    const b = this.buf.subarray(this.pos, this.pos + len);
    if (this.buf[this.pos + len] !== 0 || b.includes(0)) throw new BusWireError('string not NUL-terminated');
    this.pos += len + 1;
    return b.toString('utf8');
  }
  read(t: BusType, depth = 0): unknown {
    if (depth > MAX_DEPTH) throw new BusWireError('value nests too deep');
    this.align(alignOf(t));
    const b = this.buf;
    const fixed = <T>(n: number, f: () => T): T => {
      this.#need(n);
      const v = f();
      this.pos += n;
      return v;
    };
    switch (t.t) {
      case 'y':
        return fixed(1, () => b.readUInt8(this.pos));
      case 'b': {
        const v = this.#u32();
        if (v > 1) throw new BusWireError(`boolean ${v}`);
        return v === 1;
      }
      case 'n':
        return fixed(2, () => b.readInt16LE(this.pos));
      case 'q':
        return fixed(2, () => b.readUInt16LE(this.pos));
      case 'i':
        return fixed(4, () => b.readInt32LE(this.pos));
      case 'u':
        return this.#u32();
      case 'x':
        return fixed(8, () => b.readBigInt64LE(this.pos));
      case 't':
        return fixed(8, () => b.readBigUInt64LE(this.pos));
      case 'd':
        return fixed(8, () => b.readDoubleLE(this.pos));
      case 's':
      case 'o':
        return this.#string(this.#u32());
      case 'g':
        return this.#string(fixed(1, () => b.readUInt8(this.pos)));
      case 'v': {
        const types = parseSignature(this.read({ t: 'g' }) as string);
        if (types.length !== 1) throw new BusWireError('variant signature is not one complete type');
        return this.read(types[0]!, depth + 1);
      }
      case 'a': {
        const len = this.#u32();
        if (len > MAX_ARRAY) throw new BusWireError(`array of ${len} bytes`);
        this.align(alignOf(t.of));
        this.#need(len);
        const end = this.pos + len;
        if (t.of.t === 'y') {
          this.pos = end;
          return Buffer.from(b.subarray(end - len, end));
        }
        if (t.of.t === '{') {
          const out: Record<string, unknown> = {};
          while (this.pos < end) {
            this.align(8);
            const k = this.read(t.of.key, depth + 1);
            out[String(k)] = this.read(t.of.value, depth + 1);
          }
          if (this.pos !== end) throw new BusWireError('array length does not end at an element');
          return out;
        }
        const out: unknown[] = [];
        while (this.pos < end) out.push(this.read(t.of, depth + 1));
        if (this.pos !== end) throw new BusWireError('array length does not end at an element');
        return out;
      }
      case '(':
        return t.of.map((f) => this.read(f, depth + 1));
      case '{':
        throw new BusWireError('dict entry outside an array');
    }
  }
}

/** Marshals `body` by `signature` (offsets from an 8-aligned start). */
export function marshal(signature: string, body: readonly unknown[]): Buffer {
  const types = parseSignature(signature);
  if (types.length !== body.length)
    throw new SdError(
      'EINVAL',
      `Signature ${JSON.stringify(signature)} needs ${types.length} values, not ${body.length}`,
    );
  const w = new Writer();
  types.forEach((t, i) => {
    w.write(t, body[i]);
  });
  return Buffer.from(w.bytes());
}

/** Unmarshals a whole body by `signature`; trailing bytes are an error. */
export function unmarshal(signature: string, body: Buffer): unknown[] {
  const r = new Reader(body);
  const out = parseSignature(signature).map((t) => r.read(t));
  if (r.pos !== body.length) throw new BusWireError('bytes after the last value');
  return out;
}
