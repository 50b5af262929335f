/**
 * Reads what the SQLite store's binary encoders write (lease observations, block times):
 * unsigned base-128 varints (7 bits per byte, low first), zigzag signed ones, and length-prefixed
 * UTF-8 text. Doubles, not 32-bit operators: times in µs pass 2^32.
 */
export class ByteReader {
  private readonly buf: Buffer
  p = 0

  constructor (data: Uint8Array) {
    this.buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  }

  get done (): boolean { return this.p >= this.buf.length }

  byte (): number {
    if (this.p >= this.buf.length) throw this.truncated()
    return this.buf[this.p++] as number
  }

  /**
   * Bytes that end inside a value (damaged, or written by a newer keatrail) fail here: reading on
   * past the end looped forever in uint(), undefined bytes never ending a varint — a keatrail
   * process stuck at 100 % CPU, deaf to SIGTERM (found when a newer build's bytes met an older one).
   */
  private truncated (): Error {
    return new RangeError(`encoded bytes end inside a value (at byte ${this.p} of ${this.buf.length})`)
  }

  private need (n: number): void {
    if (this.p + n > this.buf.length) throw this.truncated()
  }

  uint (): number {
    let v = 0
    let mul = 1
    for (;;) {
      // Ten bytes at most: encodeTimes wrote that many for a zigzag delta of 2^62 or more (a
      // forged year-275760 time, before event times were bounded), and such a store stays readable.
      if (this.p >= this.buf.length || mul > 2 ** 63) throw this.truncated()
      const b = this.buf[this.p++] as number
      v += (b & 0x7f) * mul
      if (b < 0x80) return v
      mul *= 0x80
    }
  }

  int (): number {
    const u = this.uint()
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2
  }

  text (): string {
    const n = this.uint()
    this.need(n)
    const s = this.buf.toString('utf8', this.p, this.p + n)
    this.p += n
    return s
  }

  /**
   * A string written packed (lease-codec.ts): a varint of twice its length, plus one when the
   * bytes are hex digits' values — printed as lowercase hex, colon-separated when `colon` —
   * else its UTF-8.
   */
  packed (colon: boolean): string {
    const u = this.uint()
    const n = Math.floor(u / 2)
    this.need(n)
    const from = this.p
    this.p += n
    if (u % 2 === 0) return this.buf.toString('utf8', from, from + n)
    if (!colon) return this.buf.toString('hex', from, from + n)
    let s = ''
    for (let i = from; i < from + n; i++) s += (i === from ? '' : ':') + (this.buf[i] as number).toString(16).padStart(2, '0')
    return s
  }

  /** Skips a length-prefixed string (`packed`: one written packed). */
  skip (packed = false): void {
    const u = this.uint()
    const n = packed ? Math.floor(u / 2) : u
    this.need(n)
    this.p += n
  }
}
