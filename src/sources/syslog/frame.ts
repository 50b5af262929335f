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
  /** Bytes still to drop from an oversized octet-counted frame. */
  private skipBytes = 0
  /** Dropping the rest of an oversized LF frame, up to its LF. */
  private skipToLf = false

  constructor (private readonly maxBytes: number) {}

  /** Bytes received and not yet handed out as frames (unread chunk and partial frame). */
  get heldBytes (): number {
    return this.buf.length
  }

  /** Adds received bytes; `next()` hands out the frames they complete. */
  feed (data: Buffer): void {
    this.buf = this.buf.length === 0 ? data : Buffer.concat([this.buf, data])
  }

  /** The next complete frame, or undefined until more bytes are fed. */
  next (): Frame | undefined {
    for (;;) {
      if (this.skipBytes > 0) {
        const n = Math.min(this.skipBytes, this.buf.length)
        this.skipBytes -= n
        this.buf = this.buf.subarray(n)
      }
      if (this.skipToLf) {
        const nl = this.buf.indexOf(0x0a)
        if (nl < 0) { this.buf = Buffer.alloc(0); return undefined }
        this.skipToLf = false
        this.buf = this.buf.subarray(nl + 1)
      }
      if (this.buf.length === 0) return undefined
      const counted = this.octetCounted()
      if (counted === 'wait') return undefined
      if (counted !== 'no') return counted
      const lf = this.lfFrame()
      if (lf === 'wait') return undefined
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
    if (this.buf.length < start + keep) return 'wait'
    const frame = { frame: this.buf.subarray(start, start + keep), truncated: len > this.maxBytes }
    const consumed = Math.min(this.buf.length, start + len)
    this.skipBytes = start + len - consumed
    this.buf = this.buf.subarray(consumed)
    return frame
  }

  /** 'empty': an empty line was skipped. */
  private lfFrame (): Frame | 'wait' | 'empty' {
    const nl = this.buf.indexOf(0x0a)
    if (nl < 0) {
      if (this.buf.length > this.maxBytes) {
        const frame = { frame: this.buf.subarray(0, this.maxBytes), truncated: true }
        this.buf = Buffer.alloc(0)
        this.skipToLf = true
        return frame
      }
      return 'wait'
    }
    const end = nl > 0 && this.buf[nl - 1] === 0x0d ? nl - 1 : nl
    const frame = end > 0 ? { frame: this.buf.subarray(0, Math.min(end, this.maxBytes)), truncated: end > this.maxBytes } : 'empty'
    this.buf = this.buf.subarray(nl + 1)
    return frame
  }

  /** The connection closed and every frame was pulled: a last frame without its LF still counts. */
  end (onFrame: (frame: Buffer, truncated: boolean) => void): void {
    const f = this.last()
    if (f !== undefined) onFrame(f.frame, f.truncated)
  }

  /** The unfinished frame at the end of the stream (call once `next()` returned undefined). */
  last (): Frame | undefined {
    const buf = this.buf
    this.buf = Buffer.alloc(0)
    if (buf.length === 0 || this.skipToLf || this.skipBytes > 0) return undefined
    return { frame: buf.subarray(0, this.maxBytes), truncated: buf.length > this.maxBytes }
  }
}
