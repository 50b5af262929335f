/**
 * RFC 6587 framing of a syslog TCP stream: octet counting ("<len> <msg>") or, when a frame does
 * not start with a length, non-transparent framing (a message ends at LF). Decided per frame, as
 * rsyslog does. A frame over `maxBytes` keeps its first `maxBytes`, is marked truncated, and
 * the rest is skipped as it arrives (never buffered).
 */
export class SyslogFramer {
  private buf: Buffer = Buffer.alloc(0)
  /** Bytes still to drop from an oversized octet-counted frame. */
  private skipBytes = 0
  /** Dropping the rest of an oversized LF frame, up to its LF. */
  private skipToLf = false

  constructor (private readonly maxBytes: number) {}

  push (data: Buffer, onFrame: (frame: Buffer, truncated: boolean) => void): void {
    let chunk = data
    if (this.skipBytes > 0) {
      const n = Math.min(this.skipBytes, chunk.length)
      this.skipBytes -= n
      chunk = chunk.subarray(n)
    }
    if (this.skipToLf) {
      const nl = chunk.indexOf(0x0a)
      if (nl < 0) return
      this.skipToLf = false
      chunk = chunk.subarray(nl + 1)
    }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    while (this.buf.length > 0) {
      const counted = this.octetCounted(onFrame)
      if (counted === 'wait') return
      if (counted === 'done') continue
      if (!this.lfFrame(onFrame)) return
    }
  }

  /** 'done': a frame (or its first part) was handed out; 'wait': need more bytes; 'no': not octet counting. */
  private octetCounted (onFrame: (frame: Buffer, truncated: boolean) => void): 'done' | 'wait' | 'no' {
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
    onFrame(this.buf.subarray(start, start + keep), len > this.maxBytes)
    const consumed = Math.min(this.buf.length, start + len)
    this.skipBytes = start + len - consumed
    this.buf = this.buf.subarray(consumed)
    return 'done'
  }

  private lfFrame (onFrame: (frame: Buffer, truncated: boolean) => void): boolean {
    const nl = this.buf.indexOf(0x0a)
    if (nl < 0) {
      if (this.buf.length > this.maxBytes) {
        onFrame(this.buf.subarray(0, this.maxBytes), true)
        this.buf = Buffer.alloc(0)
        this.skipToLf = true
      }
      return false
    }
    const end = nl > 0 && this.buf[nl - 1] === 0x0d ? nl - 1 : nl
    if (end > 0) onFrame(this.buf.subarray(0, Math.min(end, this.maxBytes)), end > this.maxBytes)
    this.buf = this.buf.subarray(nl + 1)
    return true
  }

  /** The connection closed: a last frame without its LF still counts. */
  end (onFrame: (frame: Buffer, truncated: boolean) => void): void {
    if (this.buf.length > 0 && !this.skipToLf) onFrame(this.buf.subarray(0, this.maxBytes), this.buf.length > this.maxBytes)
    this.buf = Buffer.alloc(0)
  }
}
