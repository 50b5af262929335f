import type { KeaEvent } from '../../../parse/event.js'
import { compress, decompress, WRITE_CODEC, type CodecId } from './compress.js'
import { endianness } from 'node:os'
import { ByteReader } from '../varint.js'

/**
 * One block's events in the form stored: a payload of frames of FRAME_EVENTS events, each
 * compressed on its own, behind a compressed header (version 3).
 *   u32 (LE)        the compressed header's length
 *   header          binary: version, n, frame count, how ids are kept, each frame's compressed
 *                   length; then the event ids: as offsets (zigzag varint deltas, the first from
 *                   0) when every id is `<source_id>-<offset in hex>`, else their suffixes joined
 *                   by \n (without the block's `source-` prefix when they have it)
 *   frame k         i32 LE per event of the frame: the length of its message when that is the end
 *                   of the raw record (-1 else); the UTF-8 lengths of its two lines (document, raw
 *                   record), event by event; its derivation (a parse_contexts id, -1 for none); then the
 *                   documents of events k·F … k·F+F-1, then their raw records, each followed by \n
 *                   (lengths above: a raw record may hold newlines)
 * Per frame, not per block: a query reads a few events of each block it touches, and version 2's
 * header of every event's lengths and text ids (~90 KB decompressed) cost ~3 ms of a MAC query's
 * 14 (bench/api at 10M events); ids as offsets are ~2 bytes an event and decode without splitting.
 * Documents: an event its parser marked re-derivable (derivation.ts) stores none — its raw record
 * and derivation make it again when read (~2/3 of a block's bytes and a JSON.stringify per event
 * saved at write: bench/e2e, bench/store). Other events store their JSON with `event.id`,
 * `event.original` (and `message` when derivable) as null. Version 1 (raw records as JSON string
 * literals, no derivations) and version 2 (the lengths, derivations and text ids in the header)
 * payloads are still read; every block written or rewritten is version 3.
 * Frames: a query that names an identifier decompresses only the frames whose postings hold it
 * (block_postings.frames), ~40 KB instead of the block's ~600 KB.
 */
export const FRAME_EVENTS = 256

/**
 * Bytes lower-cased as Latin-1 text (A-Z, and À-Þ but ×), the same length: the case-insensitive
 * byte search of raw records (linesWith) transforms its needle and the frame alike. V8's one-byte
 * toLowerCase: ~15 µs a 40 KB frame against ~65 µs for a loop over its bytes (lowering was a fifth of
 * a reader's time answering MAC queries during ingestion, bench/e2e --serve).
 */
export function lowerBytes (b: Buffer): Buffer {
  return Buffer.from(b.toString('latin1').toLowerCase(), 'latin1')
}
export const PAYLOAD_VERSION = 3

/** How a version 3 header keeps ids: suffixes as text, or offsets (see above). */
const IDS_TEXT = 0
const IDS_OFFSETS = 1
/** A suffix that is an offset as written by `toString(16)` (≤ 13 digits: < 2^52), so it reads back the same. */
const OFFSET_SUFFIX = /^(?:0|[1-9a-f][0-9a-f]{0,12})$/

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

/** A block's events as the lines of its payload (see above), before compression. */
export interface BlockLines {
  ids: string[]
  m: number[]
  /** '' for an event re-derived when read. */
  docs: string[]
  originals: string[]
  /** Per event its parse_contexts id, -1 when its document is stored. */
  ctx: number[]
}

const emptyLines = (): BlockLines => ({ ids: [], m: [], docs: [], originals: [], ctx: [] })

/**
 * The payload lines of `events` (appended to `into` when given: a block growing by a batch).
 * `contextOf`: an event's parse_contexts id when its document is to be re-derived, else -1.
 */
export function linesOf (events: readonly KeaEvent[], sourceId: string, contextOf: (e: KeaEvent) => number, into: BlockLines = emptyLines()): BlockLines {
  for (const e of events) {
    into.ids.push(idSuffix(e.event.id, sourceId))
    const original = e.event.original
    const ctx = contextOf(e)
    into.ctx.push(ctx)
    into.originals.push(original)
    if (ctx >= 0) {
      into.m.push(-1)
      into.docs.push('')
      continue
    }
    const derived = e.message.length > 0 && original.endsWith(e.message)
    into.m.push(derived ? e.message.length : -1)
    into.docs.push(docLine(e, derived))
  }
  return into
}

/** Replaces event i of `lines` by `e` (a re-import that parsed better; same id). */
export function replaceLine (lines: BlockLines, i: number, e: KeaEvent, sourceId: string, contextOf: (e: KeaEvent) => number): void {
  const one = linesOf([e], sourceId, contextOf)
  lines.ids[i] = one.ids[0] as string
  lines.m[i] = one.m[0] as number
  lines.docs[i] = one.docs[0] as string
  lines.originals[i] = one.originals[0] as string
  lines.ctx[i] = one.ctx[0] as number
}

/** Keeps the events of `lines` whose index passes `keep`. */
export function filterLines (lines: BlockLines, keep: (i: number) => boolean): BlockLines {
  const out = emptyLines()
  for (let i = 0; i < lines.ids.length; i++) {
    if (!keep(i)) continue
    out.ids.push(lines.ids[i] as string)
    out.m.push(lines.m[i] as number)
    out.docs.push(lines.docs[i] as string)
    out.originals.push(lines.originals[i] as string)
    out.ctx.push(lines.ctx[i] as number)
  }
  return out
}

/** The frame of event i, and how many frames n events fill. */
export const frameOf = (i: number): number => Math.floor(i / FRAME_EVENTS)
export const framesFor = (n: number): number => Math.ceil(n / FRAME_EVENTS)

export function packLines (lines: BlockLines, codec: CodecId = WRITE_CODEC): Buffer {
  const n = lines.ids.length
  const frames: Buffer[] = []
  for (let k = 0; k * FRAME_EVENTS < n; k++) {
    const from = k * FRAME_EVENTS
    const to = Math.min(n, from + FRAME_EVENTS)
    const count = to - from
    // Line by line into one buffer: joining the strings first and encoding the result cost 8 %
    // of a write (a rope flattened, then copied again).
    let bytes = 16 * count
    for (let i = from; i < to; i++) bytes += Buffer.byteLength(lines.docs[i] as string) + Buffer.byteLength(lines.originals[i] as string) + 2
    const buf = Buffer.allocUnsafe(bytes)
    let at = 16 * count
    for (let i = from; i < to; i++) {
      const d = buf.write(lines.docs[i] as string, at)
      at += d
      buf[at++] = 10
      buf.writeInt32LE(d, 4 * (count + 2 * (i - from)))
    }
    for (let i = from; i < to; i++) {
      const o = buf.write(lines.originals[i] as string, at)
      at += o
      buf[at++] = 10
      buf.writeInt32LE(o, 4 * (count + 2 * (i - from) + 1))
    }
    for (let i = from; i < to; i++) {
      buf.writeInt32LE(lines.m[i] as number, 4 * (i - from))
      buf.writeInt32LE(lines.ctx[i] as number, 4 * (3 * count + i - from))
    }
    frames.push(compress(buf.subarray(0, at), codec))
  }
  const asOffsets = lines.ids.every((id) => OFFSET_SUFFIX.test(id))
  const ids = asOffsets ? encodeTimes(lines.ids.map((id) => parseInt(id, 16))) : Buffer.from(lines.ids.join('\n'), 'utf8')
  const raw = Buffer.allocUnsafe(4 * (4 + frames.length) + ids.length)
  let at = raw.writeInt32LE(PAYLOAD_VERSION, 0)
  at = raw.writeInt32LE(n, at)
  at = raw.writeInt32LE(frames.length, at)
  at = raw.writeInt32LE(asOffsets ? IDS_OFFSETS : IDS_TEXT, at)
  for (const f of frames) at = raw.writeInt32LE(f.length, at)
  ids.copy(raw, at)
  const head = compress(raw, codec)
  const size = Buffer.alloc(4)
  size.writeUInt32LE(head.length, 0)
  return Buffer.concat([size, head, ...frames])
}

const LITTLE_ENDIAN = endianness() === 'LE'

/** `count` i32 LE from `raw` at byte `at`, into an aligned array. */
function int32s (raw: Buffer, at: number, count: number): Int32Array {
  // Copied into an aligned array (a decompressed buffer may start at any byte): as bytes on a
  // little-endian machine, 16k readInt32LE calls were ~12 % of reading one event of a cold block.
  const ints = new Int32Array(count)
  if (LITTLE_ENDIAN) new Uint8Array(ints.buffer).set(raw.subarray(at, at + 4 * count))
  else for (let k = 0; k < count; k++) ints[k] = raw.readInt32LE(at + 4 * k)
  return ints
}

/**
 * Per event of a frame (index j from the frame's first event): the message length (m), the
 * two lines' lengths (lens[2j], lens[2j+1]) and the derivation (ctx; undefined in version 1).
 */
interface FrameMeta { m: Int32Array, lens: Int32Array, ctx: Int32Array | undefined }

interface Header {
  v: number
  n: number
  f: Int32Array
  /** Versions 1 and 2: every event's FrameMeta, of the whole block. */
  meta: FrameMeta | undefined
  /** Ids as text (suffixes joined by \n), or as offsets (varints, decoded on demand). */
  ids: Buffer | DeltaVarints
}

/** Bytes of a stored payload, read by range: a query reads a block's header and the frames it needs, not the whole blob. */
export interface PayloadReader { length: number, read: (offset: number, length: number) => Buffer }

function readHeader (src: PayloadReader, codec: number): { head: Header, framesAt: number } {
  const len = src.read(0, 4).readUInt32LE(0)
  const raw = decompress(src.read(4, len), codec)
  const v = raw.readInt32LE(0)
  if (v !== 1 && v !== 2 && v !== PAYLOAD_VERSION) throw new Error(`block payload version ${v} is unknown to this keatrail`)
  const n = raw.readInt32LE(4)
  const frames = raw.readInt32LE(8)
  const bad = (): Error => new Error('block payload header does not describe its events')
  if (frames !== framesFor(n)) throw bad()
  if (v === PAYLOAD_VERSION) {
    if (n < 0 || raw.length < 4 * (4 + frames)) throw bad()
    const kind = raw.readInt32LE(12)
    if (kind !== IDS_TEXT && kind !== IDS_OFFSETS) throw bad()
    const idBytes = raw.subarray(4 * (4 + frames))
    return { head: { v, n, f: int32s(raw, 16, frames), meta: undefined, ids: kind === IDS_OFFSETS ? new DeltaVarints(idBytes, n) : idBytes }, framesAt: 4 + len }
  }
  const perEvent = v === 1 ? 3 : 4
  if (raw.length < 4 * (3 + frames + perEvent * n)) throw bad()
  const ints = int32s(raw, 12, frames + perEvent * n)
  return {
    head: {
      v,
      n,
      f: ints.subarray(0, frames),
      meta: { m: ints.subarray(frames, frames + n), lens: ints.subarray(frames + n, frames + 3 * n), ctx: v === 1 ? undefined : ints.subarray(frames + 3 * n) },
      ids: raw.subarray(4 * (3 + frames + perEvent * n))
    },
    framesAt: 4 + len
  }
}

export function unpackLines (payload: Uint8Array, codec: number): BlockLines {
  const b = DecodedBlock.unpack(payload, codec, '')
  const out = emptyLines()
  for (let i = 0; i < b.n; i++) {
    out.ids.push(b.storedId(i))
    out.m.push(b.messageLength(i))
    out.docs.push(b.doc(i))
    out.originals.push(b.original(i))
    out.ctx.push(b.context(i))
  }
  return out
}

/**
 * Makes event i of a block again from its raw record (the block's reader knows the contexts and
 * times); `messageOnly`: its header fields and message will do (RecordParserOptions.messageOnly).
 */
export type Derive = (ctx: number, raw: string, offset: number, i: number, messageOnly: boolean) => KeaEvent

const noDerive: Derive = (ctx) => { throw new Error(`block event of derivation ${ctx} read without its parse contexts`) }

/** The last index j in lo..hi with starts[j] ≤ at (starts ascend): the line holding byte `at`. */
function lineAt (starts: Int32Array, at: number, lo: number, hi: number): number {
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if ((starts[mid] as number) <= at) lo = mid
    else hi = mid - 1
  }
  return lo
}

/** A decompressed frame: its lines (documents, then raw records), where each starts, and its events' FrameMeta. */
interface Frame { buf: Buffer, starts: Int32Array, meta: FrameMeta }

/**
 * A stored block, decoded lazily: the header when it is read, a frame when one of its events is
 * asked for; a line becomes a string, and a document an object, only on demand. Identifiers are
 * found by a byte search of a frame (`linesWith`), not line by line.
 */
export class DecodedBlock {
  readonly n: number
  private readonly version: number
  /** Versions 1 and 2: the whole block's FrameMeta (from its header). */
  private readonly blockMeta: FrameMeta | undefined
  /** Ids as text (suffixes joined by \n) or as offsets. */
  private readonly idText: Buffer | undefined
  private readonly offsets: DeltaVarints | undefined
  /** Where each id starts in idText (and one past the last), found on first use. */
  private idStarts: Int32Array | undefined
  private lookups = 0
  private idMap: Map<string, number> | undefined
  /** Each frame once read, and its compressed bytes' place in the payload. */
  private readonly frames: Array<Frame | undefined>
  private readonly frameAt: number[]
  /** Per frame, its lines lower-cased (lowerBytes: identifier and word tests), made on first use. */
  private readonly lowFrames: Array<Buffer | undefined>
  /** Per frame, its events with bytes beyond ASCII (word tests), found on first use. */
  private readonly wideEvents: Array<number[] | undefined>

  constructor (private readonly payload: PayloadReader, private readonly codec: number, private readonly sourceId: string, private readonly derive: Derive = noDerive) {
    const { head, framesAt } = readHeader(payload, codec)
    this.version = head.v
    if (head.ids instanceof DeltaVarints) this.offsets = head.ids
    else this.idText = head.ids
    this.blockMeta = head.meta
    this.n = head.n
    this.frameAt = []
    let at = framesAt
    for (const len of head.f) { this.frameAt.push(at); at += len }
    if (at !== payload.length) throw new Error(`block payload of ${payload.length} bytes does not hold its frames`)
    this.frames = new Array<Frame | undefined>(head.f.length)
    this.lowFrames = new Array<Buffer | undefined>(head.f.length)
    this.wideEvents = new Array<number[] | undefined>(head.f.length)
  }

  static unpack (payload: Uint8Array, codec: number, sourceId: string, derive?: Derive): DecodedBlock {
    const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
    return new DecodedBlock({ length: buf.length, read: (offset, length) => buf.subarray(offset, offset + length) }, codec, sourceId, derive)
  }

  get frameCount (): number { return this.frames.length }

  private starts0 (t: Buffer): Int32Array {
    if (this.idStarts === undefined) {
      // Line starts, not 4,096 strings: a lookup needs one id and a page a hundred (splitting
      // was 13 % of reading one event of a cold block, and most of its garbage).
      const starts = new Int32Array(this.n + 1)
      let k = 1
      for (let at = t.indexOf(10); at >= 0 && k < this.n; at = t.indexOf(10, at + 1)) starts[k++] = at + 1
      if (k !== this.n && this.n > 0) throw new Error(`block payload names ${k} ids for ${this.n} events`)
      starts[this.n] = t.length + 1
      this.idStarts = starts
    }
    return this.idStarts
  }

  /** Event i's stored id suffix: its offset in hex, or what follows the source's prefix, or '!' and the whole id. */
  storedId (i: number): string {
    if (this.offsets !== undefined) return this.offsets.at(i).toString(16)
    const t = this.idText as Buffer
    const st = this.starts0(t)
    return t.toString('utf8', st[i] as number, (st[i + 1] as number) - 1)
  }

  /**
   * Where event `id` is in this block, or undefined: by its offset when ids are kept as offsets;
   * else its stored suffix searched as bytes (a lookup is most often the block's only one), and
   * from the 9th lookup on, by a map of every id.
   */
  indexOf (id: string): number | undefined {
    const suffix = idSuffix(id, this.sourceId)
    if (this.offsets !== undefined) {
      if (!OFFSET_SUFFIX.test(suffix)) return undefined
      const off = parseInt(suffix, 16)
      return this.offsets.indexOf(off)
    }
    if (this.idMap !== undefined || ++this.lookups > 8) {
      if (this.idMap === undefined) {
        this.idMap = new Map()
        for (let i = 0; i < this.n; i++) this.idMap.set(this.storedId(i), i)
      }
      return this.idMap.get(suffix)
    }
    const want = Buffer.from(suffix, 'utf8')
    const t = this.idText as Buffer
    const st = this.starts0(t)
    for (let at = t.indexOf(want); at >= 0; at = t.indexOf(want, at + 1)) {
      const end = at + want.length
      if ((at > 0 && t[at - 1] !== 10) || (end < t.length && t[end] !== 10)) continue
      // The line starting at `at`: binary search of the starts.
      let lo = 0
      let hi = this.n - 1
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1
        if ((st[mid] as number) <= at) lo = mid
        else hi = mid - 1
      }
      return lo
    }
    return undefined
  }

  private frame (k: number): Frame {
    let f = this.frames[k]
    if (f === undefined) {
      const end = k + 1 < this.frameAt.length ? this.frameAt[k + 1] as number : this.payload.length
      let buf = decompress(this.payload.read(this.frameAt[k] as number, end - (this.frameAt[k] as number)), this.codec)
      const from = k * FRAME_EVENTS
      const count = Math.min(this.n, from + FRAME_EVENTS) - from
      let meta: FrameMeta
      if (this.blockMeta === undefined) {
        if (buf.length < 16 * count) throw new Error(`block frame ${k} of ${buf.length} bytes does not hold its lines`)
        const ints = int32s(buf, 0, 4 * count)
        meta = { m: ints.subarray(0, count), lens: ints.subarray(count, 3 * count), ctx: ints.subarray(3 * count) }
        buf = buf.subarray(16 * count)
      } else {
        const bm = this.blockMeta
        meta = { m: bm.m.subarray(from, from + count), lens: bm.lens.subarray(2 * from, 2 * (from + count)), ctx: bm.ctx?.subarray(from, from + count) }
      }
      const starts = new Int32Array(2 * count + 1)
      let at = 0
      for (let j = 0; j < count; j++) { starts[j] = at; at += (meta.lens[2 * j] as number) + 1 }
      for (let j = 0; j < count; j++) { starts[count + j] = at; at += (meta.lens[2 * j + 1] as number) + 1 }
      starts[2 * count] = at
      if (at !== buf.length) throw new Error(`block frame ${k} of ${buf.length} bytes does not hold its lines`)
      f = { buf, starts, meta }
      this.frames[k] = f
    }
    return f
  }

  private line (i: number, original: boolean): string {
    const k = frameOf(i)
    const { buf, starts } = this.frame(k)
    const count = (starts.length - 1) / 2
    const j = i - k * FRAME_EVENTS + (original ? count : 0)
    return buf.toString('utf8', starts[j] as number, (starts[j + 1] as number) - 1)
  }

  /** Event i's FrameMeta and its index there. */
  private meta (i: number): { meta: FrameMeta, j: number } {
    // Versions 1 and 2 hold them in the header: no frame to decompress.
    if (this.blockMeta !== undefined) return { meta: this.blockMeta, j: i }
    const k = frameOf(i)
    return { meta: this.frame(k).meta, j: i - k * FRAME_EVENTS }
  }

  id (i: number): string {
    return fullId(this.storedId(i), this.sourceId)
  }

  /** Event i's parse_contexts id, or -1: its document is stored. */
  context (i: number): number {
    const { meta, j } = this.meta(i)
    return meta.ctx === undefined ? -1 : meta.ctx[j] as number
  }

  /** The length of event i's message when it is the end of its raw record, else -1. */
  messageLength (i: number): number {
    const { meta, j } = this.meta(i)
    return meta.m[j] as number
  }

  /** Event i's stored document line ('' when it is re-derived; see above). */
  doc (i: number): string {
    return this.line(i, false)
  }

  /** Event i's raw record. */
  original (i: number): string {
    const text = this.line(i, true)
    return this.version === 1 ? JSON.parse(text) as string : text
  }

  /** Bytes of event i's document as the API serialises it, about (page budgets). */
  size (i: number): number {
    const { meta, j } = this.meta(i)
    const raw = meta.lens[2 * j + 1] as number
    // A re-derived document: its raw record, the message (its end, again) and ~600 bytes of fields.
    if (meta.ctx !== undefined && (meta.ctx[j] as number) >= 0) return 2 * raw + 600
    // The message, when derived from the raw record, is a second copy of its end.
    return (meta.lens[2 * j] as number) + raw + Math.max(0, meta.m[j] as number) + 80
  }

  /**
   * The events of frame k whose stored document holds `literal` (UTF-8 bytes), by a byte search
   * of the frame; with `lowerRaw`, also those re-derived whose raw record holds it in any ASCII
   * case (`lowerRaw` lower-cased by lowerBytes). A re-derived event without `lowerRaw` is always named.
   */
  linesWith (k: number, literal: Buffer, lowerRaw?: Buffer): Set<number> {
    const out = new Set<number>()
    const { buf, starts, meta } = this.frame(k)
    const count = (starts.length - 1) / 2
    const first = k * FRAME_EVENTS
    const lineOf = (at: number, lo: number, hi: number): number => lineAt(starts, at, lo, hi)
    const end = starts[count] as number
    let lo = 0
    for (let at = buf.indexOf(literal); at >= 0 && at < end; at = buf.indexOf(literal, at + 1)) {
      lo = lineOf(at, lo, count - 1)
      out.add(first + lo)
    }
    const ctx = meta.ctx
    if (ctx === undefined) return out
    let derived = false
    for (let j = 0; j < count && !derived; j++) derived = (ctx[j] as number) >= 0
    if (!derived) return out
    if (lowerRaw === undefined) {
      for (let j = 0; j < count; j++) if ((ctx[j] as number) >= 0) out.add(first + j)
      return out
    }
    const low = this.lowered(k)
    lo = count
    for (let at = low.indexOf(lowerRaw, end); at >= 0; at = low.indexOf(lowerRaw, at + 1)) {
      lo = lineOf(at, lo, 2 * count - 1)
      const j = lo - count
      if ((ctx[j] as number) >= 0) out.add(first + j)
    }
    return out
  }

  /**
   * The events of frame k whose document or raw record holds `word` (ASCII letters, digits and
   * _, lower case) in any ASCII case, and every event whose lines hold a byte beyond ASCII (full
   * text folds diacritics there: only the event itself can tell). A byte search of the frame
   * lower-cased once: testing each event's lines as strings cost ~1.5 µs an event, most of a
   * phrase query's time (bench/api: 48 ms of CPU a request at 10M events).
   */
  linesWithWord (k: number, word: Buffer): Set<number> {
    const { starts } = this.frame(k)
    const low = this.lowered(k)
    const out = new Set(this.beyondAscii(k))
    const count = (starts.length - 1) / 2
    const first = k * FRAME_EVENTS
    for (let at = low.indexOf(word); at >= 0; at = low.indexOf(word, at + 1)) {
      const line = lineAt(starts, at, 0, 2 * count - 1)
      out.add(first + (line < count ? line : line - count))
    }
    return out
  }

  /** Frame k wholly lower-cased (lowerBytes), its lines at their places: identifier and word tests. */
  private lowered (k: number): Buffer {
    let low = this.lowFrames[k]
    if (low === undefined) {
      low = lowerBytes(this.frame(k).buf)
      this.lowFrames[k] = low
    }
    return low
  }

  /** The events of frame k whose lines hold a byte beyond ASCII. */
  private beyondAscii (k: number): number[] {
    let out = this.wideEvents[k]
    if (out === undefined) {
      const { buf, starts } = this.frame(k)
      const count = (starts.length - 1) / 2
      const text = buf.toString('latin1')
      out = []
      const wide = /[\x80-\xff]/g
      for (let m = wide.exec(text); m !== null; m = wide.exec(text)) {
        const line = lineAt(starts, m.index, 0, 2 * count - 1)
        out.push(k * FRAME_EVENTS + (line < count ? line : line - count))
        // On from the next line: one mark per line.
        wide.lastIndex = starts[line + 1] as number
      }
      this.wideEvents[k] = out
    }
    return out
  }

  /**
   * Event i. `messageOnly`: a re-derived event may come with its header fields and message only
   * (a full-text test needs no more); a stored document is whole either way.
   */
  event (i: number, messageOnly = false): KeaEvent {
    const ctx = this.context(i)
    if (ctx >= 0) {
      const offset = this.offsets !== undefined ? this.offsets.at(i) : parseInt(this.storedId(i), 16)
      const e = this.derive(ctx, this.original(i), offset, i, messageOnly)
      e.event.id = this.id(i)
      return e
    }
    const e = JSON.parse(this.doc(i)) as KeaEvent
    const original = this.original(i)
    e.event.id = this.id(i)
    e.event.original = original
    const len = this.messageLength(i)
    if (len >= 0) e.message = original.slice(original.length - len)
    return e
  }
}

/**
 * encodeTimes' values decoded as far as asked (decodeTimes: all of them): finding one event of a
 * block by its offset, or the time of one event, decoded all 4,096 (~1.5 ms of a /leases/at answer's ~9 of CPU, its ~25
 * evidence lines each in another block: bench/api 10M).
 */
export class DeltaVarints {
  private readonly values: Float64Array
  private readonly r: ByteReader
  private decoded = 0
  private prev = 0
  /** The first decode error: every later call fails with it (the reader stops mid-value; going on would misread). */
  private failed: Error | undefined

  constructor (buf: Uint8Array, readonly n: number) {
    // Each value takes at least one byte.
    if (!Number.isInteger(n) || n < 0 || buf.length < n) throw new RangeError(`${buf.length} bytes cannot hold ${n} varints`)
    this.values = new Float64Array(n)
    this.r = new ByteReader(buf)
  }

  private upTo (i: number): void {
    if (this.failed !== undefined) throw this.failed
    try {
      while (this.decoded <= i) {
        this.prev += this.r.int()
        this.values[this.decoded++] = this.prev
      }
      if (this.decoded === this.n && !this.r.done) throw new RangeError(`bytes left after ${this.n} varints`)
    } catch (err) {
      this.failed = err as Error
      throw err
    }
  }

  /** Every value (decodeTimes). */
  all (): Float64Array {
    if (this.decoded < this.n) this.upTo(this.n - 1)
    return this.values
  }

  /** Value i (0 ≤ i < n). */
  at (i: number): number {
    if (i < 0 || i >= this.n) throw new RangeError(`value ${i} of ${this.n}`)
    if (i >= this.decoded) this.upTo(i)
    return this.values[i] as number
  }

  /** The first index holding `v`, or undefined. */
  indexOf (v: number): number | undefined {
    for (let i = 0; i < this.n; i++) if (this.at(i) === v) return i
    return undefined
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
  return new DeltaVarints(buf, n).all()
}
