/** One syslog message cut out of a stream. */
export interface Frame {
  frame: Buffer
  /** The message was longer than the limit: `frame` holds its first `maxBytes`. */
  truncated: boolean
}

/**
 * RFC 6587 framing of a syslog TCP stream: octet counting ("<len> <msg>") or, when a frame does
 * not start with a length, non-transparent framing (a message ends at LF). Decided per frame, as
 * rsyslog does. A frame over `maxBytes` keeps its first `maxBytes`, is marked truncated, and
 * the rest is skipped as it arrives (never buffered).
 *
 * Frames are pulled one at a time (`feed` then `next`) so that a caller whose pipeline is full
 * can stop in the middle of a chunk: a 64 KiB chunk of 2-byte frames is 32k events, and parsing
 * a whole chunk per connection before pushing back is what exhausted memory. What is not pulled
 * stays here as the (one) chunk's unread bytes.
 */
export class SyslogFramer {
  private buf: Buffer = Buffer.alloc(0)
  /**
   * Chunks received while `buf` cannot yet make a frame, joined to it only when they can
   * complete one. Joining each chunk as it came copied the partial frame again every time, and
   * each look for its LF started over: a 64 KB frame sent a byte at a time cost 340 ms.
   */
  private parts: Buffer[] = []
  private partsBytes = 0
  private partsHaveLf = false
  /** buf[0, lfFrom) holds no LF (looked at already). */
  private lfFrom = 0
  /** Octet counting: the bytes buf must hold for its frame (0: not known, or LF framing). */
  private need = 0
  /** Bytes still to drop from an oversized octet-counted frame. */
  private skipBytes = 0
  /** Dropping the rest of an oversized LF frame, up to its LF. */
  private skipToLf = false

  constructor (private readonly maxBytes: number) {}

  /** Bytes received and not yet handed out as frames (unread chunk and partial frame). */
  get heldBytes (): number {
    return this.buf.length + this.partsBytes
  }

  /** Adds received bytes; `next()` hands out the frames they complete. */
  feed (data: Buffer): void {
    if (this.buf.length === 0 && this.parts.length === 0) { this.buf = data; return }
    this.parts.push(data)
    this.partsBytes += data.length
    if (!this.partsHaveLf && data.includes(0x0a)) this.partsHaveLf = true
  }

  /** Whether the chunks waiting may complete what buf holds (or buf is too short to tell its framing). */
  private joinable (): boolean {
    if (this.parts.length === 0) return false
    if (this.skipBytes > 0 || this.skipToLf || this.buf.length < 11) return true
    const total = this.buf.length + this.partsBytes
    return this.need > 0 ? total >= this.need : this.partsHaveLf || total > this.maxBytes
  }

  private join (): void {
    this.buf = Buffer.concat([this.buf, ...this.parts])
    this.parts = []
    this.partsBytes = 0
    this.partsHaveLf = false
  }

  /** buf from byte n on (what came before was handed out or skipped). */
  private consume (n: number): void {
    this.buf = this.buf.subarray(n)
    this.lfFrom = 0
    this.need = 0
  }

  /** The next complete frame, or undefined until more bytes are fed. */
  next (): Frame | undefined {
    for (;;) {
      if (this.skipBytes > 0) {
        const n = Math.min(this.skipBytes, this.buf.length)
        this.skipBytes -= n
        this.consume(n)
      }
      if (this.skipToLf) {
        const nl = this.buf.indexOf(0x0a)
        if (nl < 0) {
          this.consume(this.buf.length)
          if (this.parts.length === 0) return undefined
          this.join()
          continue
        }
        this.skipToLf = false
        this.consume(nl + 1)
      }
      if (this.buf.length === 0) {
        if (this.parts.length === 0) return undefined
        this.join()
        continue
      }
      const counted = this.octetCounted()
      if (counted === 'wait') {
        if (!this.joinable()) return undefined
        this.join()
        continue
      }
      if (counted !== 'no') return counted
      const lf = this.lfFrame()
      if (lf === 'wait') {
        if (!this.joinable()) return undefined
        this.join()
        continue
      }
      if (lf !== 'empty') return lf
    }
  }

  /** Feeds `data` and hands out every frame it completes. */
  push (data: Buffer, onFrame: (frame: Buffer, truncated: boolean) => void): void {
    this.feed(data)
    for (let f = this.next(); f !== undefined; f = this.next()) onFrame(f.frame, f.truncated)
  }

  /** 'wait': need more bytes; 'no': not octet counting. */
  private octetCounted (): Frame | 'wait' | 'no' {
    const first = this.buf[0] as number
    if (first < 0x31 || first > 0x39) return 'no'
    const sp = this.buf.subarray(0, 11).indexOf(0x20)
    if (sp < 0) return this.buf.length >= 11 ? 'no' : 'wait'
    const digits = this.buf.toString('latin1', 0, sp)
    if (!/^[1-9]\d{0,8}$/.test(digits)) return 'no'
    const len = Number(digits)
    const start = sp + 1
    const keep = Math.min(len, this.maxBytes)
    if (this.buf.length < start + keep) { this.need = start + keep; return 'wait' }
    const frame = { frame: this.buf.subarray(start, start + keep), truncated: len > this.maxBytes }
    const consumed = Math.min(this.buf.length, start + len)
    this.skipBytes = start + len - consumed
    this.consume(consumed)
    return frame
  }

  /** 'empty': an empty line was skipped. */
  private lfFrame (): Frame | 'wait' | 'empty' {
    const nl = this.buf.indexOf(0x0a, this.lfFrom)
    if (nl < 0) {
      if (this.buf.length > this.maxBytes) {
        const frame = { frame: this.buf.subarray(0, this.maxBytes), truncated: true }
        this.consume(this.buf.length)
        this.skipToLf = true
        return frame
      }
      this.lfFrom = this.buf.length
      return 'wait'
    }
    const end = nl > 0 && this.buf[nl - 1] === 0x0d ? nl - 1 : nl
    const frame = end > 0 ? { frame: this.buf.subarray(0, Math.min(end, this.maxBytes)), truncated: end > this.maxBytes } : 'empty'
    this.consume(nl + 1)
    return frame
  }

  /** The connection closed and every frame was pulled: a last frame without its LF still counts. */
  end (onFrame: (frame: Buffer, truncated: boolean) => void): void {
    const f = this.last()
    if (f !== undefined) onFrame(f.frame, f.truncated)
  }

  /** The unfinished frame at the end of the stream (call once `next()` returned undefined). */
  last (): Frame | undefined {
    if (this.parts.length > 0) this.join()
    const buf = this.buf
    this.consume(buf.length)
    if (buf.length === 0 || this.skipToLf || this.skipBytes > 0) return undefined
    return { frame: buf.subarray(0, this.maxBytes), truncated: buf.length > this.maxBytes }
  }
}
