import type { KeaEvent } from '../../../parse/event.js'
import { compress, decompress, WRITE_CODEC, type CodecId } from './compress.js'

/**
 * One block's events in the form stored: a payload of text lines, compressed as one stream.
 *   line 0          JSON header: { v, ids, m, b } — event ids (without the block's `source-`
 *                   prefix when they have it), per event the length of the message when it is
 *                   the end of the raw record (it is for every record a pattern parsed), -1 else,
 *                   and the UTF-8 length of every following line (a reader finds a line without
 *                   scanning for newlines: that scan was a quarter of a MAC query's time)
 *   lines 1..n      each event's JSON document with `event.id`, `event.original` (and `message`
 *                   when derivable) as null: the raw record is the largest field and is stored once
 *   lines n+1..2n   each event's raw record (`event.original`) as a JSON string
 * Lines, not one JSON array: a query parses only the documents of events it keeps (JSON.parse
 * of a whole 4,096-event block costs ~20 ms, a line split ~1 ms).
 */
export const PAYLOAD_VERSION = 1

/** The id's part after the `<source_id>-` prefix ('' + id: ids of another shape, marked by a leading '!'). */
function idSuffix (id: string, sourceId: string): string {
  return id.length > sourceId.length + 1 && id.startsWith(sourceId) && id.charCodeAt(sourceId.length) === 45 ? id.slice(sourceId.length + 1) : '!' + id
}

export function fullId (suffix: string, sourceId: string): string {
  return suffix.charCodeAt(0) === 33 ? suffix.slice(1) : `${sourceId}-${suffix}`
}

/**
 * The document line of an event: its JSON with the fields stored elsewhere nulled (their keys
 * keep their place). Nulled in place and put back: copying the event and its `event` object for
 * JSON.stringify was a third of its cost and most of a write's garbage.
 */
function docLine (e: KeaEvent, messageDerived: boolean): string {
  const ev = e.event as { id: string | null, original: string | null }
  const { id, original } = ev
  const message = e.message
  ev.id = null
  ev.original = null
  if (messageDerived) (e as { message: string | null }).message = null
  try {
    return JSON.stringify(e)
  } finally {
    ev.id = id
    ev.original = original
    e.message = message
  }
}

/** A block's events as the text lines of its payload (see above), before compression. */
export interface BlockLines {
  ids: string[]
  m: number[]
  docs: string[]
  /** Each raw record as a JSON string literal. */
  originals: string[]
}

/** The payload lines of `events` (appended to `into` when given: a block growing by a batch). */
export function linesOf (events: readonly KeaEvent[], sourceId: string, into: BlockLines = { ids: [], m: [], docs: [], originals: [] }): BlockLines {
  for (const e of events) {
    into.ids.push(idSuffix(e.event.id, sourceId))
    const original = e.event.original
    const derived = e.message.length > 0 && original.endsWith(e.message)
    into.m.push(derived ? e.message.length : -1)
    into.docs.push(docLine(e, derived))
    into.originals.push(JSON.stringify(original))
  }
  return into
}

/** Replaces event i of `lines` by `e` (a re-import that parsed better; same id). */
export function replaceLine (lines: BlockLines, i: number, e: KeaEvent, sourceId: string): void {
  const one = linesOf([e], sourceId)
  lines.ids[i] = one.ids[0] as string
  lines.m[i] = one.m[0] as number
  lines.docs[i] = one.docs[0] as string
  lines.originals[i] = one.originals[0] as string
}

/** Keeps the events of `lines` whose index passes `keep`. */
export function filterLines (lines: BlockLines, keep: (i: number) => boolean): BlockLines {
  const out: BlockLines = { ids: [], m: [], docs: [], originals: [] }
  for (let i = 0; i < lines.ids.length; i++) {
    if (!keep(i)) continue
    out.ids.push(lines.ids[i] as string)
    out.m.push(lines.m[i] as number)
    out.docs.push(lines.docs[i] as string)
    out.originals.push(lines.originals[i] as string)
  }
  return out
}

export function packLines (lines: BlockLines, codec: CodecId = WRITE_CODEC): Buffer {
  // Line by line into one buffer: joining ~8,000 strings into one first and encoding that cost
  // 8 % of a write (a rope flattened, then copied again).
  const lengths: number[] = []
  let bytes = 0
  for (const l of lines.docs) { const n = Buffer.byteLength(l); lengths.push(n); bytes += n + 1 }
  for (const l of lines.originals) { const n = Buffer.byteLength(l); lengths.push(n); bytes += n + 1 }
  const head = JSON.stringify({ v: PAYLOAD_VERSION, ids: lines.ids, m: lines.m, b: lengths })
  bytes += Buffer.byteLength(head)
  const buf = Buffer.allocUnsafe(bytes)
  let at = buf.write(head, 0)
  for (const l of lines.docs) { buf[at++] = 10; at += buf.write(l, at) }
  for (const l of lines.originals) { buf[at++] = 10; at += buf.write(l, at) }
  return compress(buf.subarray(0, at), codec)
}

export function unpackLines (payload: Uint8Array, codec: number): BlockLines {
  const all = decompress(payload, codec).toString('utf8').split('\n')
  const head = JSON.parse(all[0] as string) as { v: number, ids: string[], m: number[], b: number[] }
  if (head.v !== PAYLOAD_VERSION) throw new Error(`block payload version ${head.v} is unknown to this keatrail`)
  const n = head.ids.length
  if (all.length !== 2 * n + 1) throw new Error(`block payload holds ${all.length} lines for ${n} events`)
  return { ids: head.ids, m: head.m, docs: all.slice(1, 1 + n), originals: all.slice(1 + n) }
}

/**
 * A stored block, decoded lazily: the payload is decompressed once and kept as bytes with the
 * start of every line; a line becomes a string, and a document an object, only when asked for.
 * Converting a whole 4,096-event payload to text and splitting it cost ~2.5 ms of the ~6 ms a
 * block took before a query could even test its events (bench/_d); identifiers are now found by
 * a byte search of the payload (`linesWith`).
 */
export class DecodedBlock {
  readonly n: number
  readonly ids: string[]
  private readonly m: number[]
  /** Byte offset of each line's start, and one past the last line's end. */
  private readonly starts: Int32Array

  constructor (private readonly buf: Buffer, private readonly sourceId: string) {
    const end = buf.indexOf(10)
    const head = JSON.parse(buf.toString('utf8', 0, end < 0 ? buf.length : end)) as { v: number, ids: string[], m: number[], b: number[] }
    if (head.v !== PAYLOAD_VERSION) throw new Error(`block payload version ${head.v} is unknown to this keatrail`)
    this.ids = head.ids
    this.m = head.m
    this.n = head.ids.length
    if (head.b.length !== 2 * this.n) throw new Error(`block payload names ${head.b.length} lines for ${this.n} events`)
    const starts = new Int32Array(2 * this.n + 2)
    let at = end + 1
    starts[0] = 0
    for (let k = 0; k < head.b.length; k++) {
      starts[k + 1] = at
      at += (head.b[k] as number) + 1
    }
    starts[2 * this.n + 1] = at
    if (at !== buf.length + 1) throw new Error(`block payload of ${buf.length} bytes does not hold its lines`)
    this.starts = starts
  }

  static unpack (payload: Uint8Array, codec: number, sourceId: string): DecodedBlock {
    return new DecodedBlock(decompress(payload, codec), sourceId)
  }

  private line (k: number): string {
    return this.buf.toString('utf8', this.starts[k] as number, (this.starts[k + 1] as number) - 1)
  }

  private lineBytes (k: number): number {
    return (this.starts[k + 1] as number) - 1 - (this.starts[k] as number)
  }

  id (i: number): string {
    return fullId(this.ids[i] as string, this.sourceId)
  }

  /** Event i's document line (JSON with nulls where the id, raw record and maybe message go). */
  doc (i: number): string {
    return this.line(1 + i)
  }

  /** Event i's raw record as its JSON string literal. */
  originalLiteral (i: number): string {
    return this.line(1 + this.n + i)
  }

  /** Bytes of event i's document as the API serialises it, about (page budgets). */
  size (i: number): number {
    // The message, when derived from the raw record, is a second copy of its end.
    return this.lineBytes(1 + i) + this.lineBytes(1 + this.n + i) + Math.max(0, this.m[i] as number) + (this.ids[i] as string).length + 40
  }

  /** The events whose document holds `literal` (UTF-8 bytes), by a byte search of the payload. */
  linesWith (literal: Buffer): Set<number> {
    const out = new Set<number>()
    const first = this.starts[1] as number
    const end = this.starts[1 + this.n] as number
    let lo = 1
    for (let at = this.buf.indexOf(literal, first); at >= 0 && at < end; at = this.buf.indexOf(literal, at + 1)) {
      // The line holding `at`: the last start ≤ at (starts ascend; hits ascend too).
      let hi = this.n
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1
        if ((this.starts[mid] as number) <= at) lo = mid
        else hi = mid - 1
      }
      out.add(lo - 1)
    }
    return out
  }

  event (i: number): KeaEvent {
    const e = JSON.parse(this.doc(i)) as KeaEvent
    const original = JSON.parse(this.originalLiteral(i)) as string
    e.event.id = this.id(i)
    e.event.original = original
    const len = this.m[i] as number
    if (len >= 0) e.message = original.slice(original.length - len)
    return e
  }
}

/**
 * Event times as zigzag varint deltas, the first from 0: events of one source mostly arrive in
 * time order a few ms apart, so a time costs 2-3 bytes instead of 8.
 */
export function encodeTimes (ts: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(ts.length * 10)
  let at = 0
  let prev = 0
  for (const t of ts) {
    const d = t - prev
    prev = t
    // Zigzag on doubles: times are < 2^53 µs, so no 32-bit operators.
    let z = d >= 0 ? d * 2 : -d * 2 - 1
    while (z >= 128) {
      out[at++] = (z % 128) | 128
      z = Math.floor(z / 128)
    }
    out[at++] = z
  }
  return out.subarray(0, at)
}

export function decodeTimes (buf: Uint8Array, n: number): Float64Array {
  const out = new Float64Array(n)
  let at = 0
  let prev = 0
  for (let i = 0; i < n; i++) {
    let z = 0
    let mul = 1
    for (;;) {
      const b = buf[at++] as number
      z += (b & 127) * mul
      if (b < 128) break
      mul *= 128
    }
    prev += z % 2 === 0 ? z / 2 : -(z + 1) / 2
    out[i] = prev
  }
  return out
}
