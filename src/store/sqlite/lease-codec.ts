import type { EndReason, Certainty, LeaseInterval, LeaseKey, LeaseObservation } from '../../leases/types.js'
import { END_REASONS } from '../../leases/types.js'
import { SHAPING_ACTIONS, sequenceOf } from '../../leases/observe.js'
import { ByteReader } from './varint.js'
import { writeColonHex } from './ident-blob.js'

// The compact forms SqliteLeases stores (schema 10): a key's observations as delta-encoded
// bytes, an interval's derived fields as a short JSON array. A DHCPv4 renewal costs ~9 bytes
// here instead of a ~540-byte lease_obs row with its index entries (bench/lease-derive).

const ACTIONS = [...SHAPING_ACTIONS]
const ACTION_CODE = new Map(ACTIONS.map((a, i) => [a, i]))
/** Low nibble of an observation's first byte: its action, or one of these. */
const A_OTHER = 14 // an action outside SHAPING_ACTIONS: its text follows
const A_JSON = 15 // the whole observation as JSON (a field the binary form cannot hold)
const F_LIFETIME = 0x10
const F_SUBNET = 0x20
const F_CLIENT = 0x40
const F_MORE = 0x80
const X_SOURCE = 0x01 // the event id's source (before its last '-') differs from the previous one
const X_RAW_ID = 0x02 // the event id is not <source>-<hex offset>: its text follows
const X_SOURCE_PACKED = 0x04 // with X_SOURCE: the source is written packed (ByteReader.packed; since schema 13)
const X_SERVER = 0x08 // the server (a lease domain's member that logged it) differs from the previous one: its text follows ('' none)
const C_HWADDR = 0x01
const C_CLIENT_ID = 0x02
const C_DUID = 0x04
const C_DUID_LL = 0x08
const C_IAID = 0x10
const C_HOSTNAME = 0x20
/**
 * The identifiers (not the hostname) are written packed: colon hex as its bytes. With the source
 * packed too, an interval's first observation is ~31 bytes shorter (MAC 17 → 7, client id 20 → 8,
 * a file's source id 20 → 11): ~3.5 of the lease history's bytes per event (bench:store). Bytes
 * written before (schema 12) lack the flag and read as text.
 */
const C_PACKED = 0x40
const PLAIN_HEX = /^(?:[0-9a-f]{2})+$/
/** Where a colon hex identifier's bytes are made before its length is written (longer ones: as text). */
const PACK_SCRATCH = new Uint8Array(256)


function isCount (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

type Client = Pick<LeaseObservation, 'hwaddr' | 'client_id' | 'duid' | 'duid_ll' | 'iaid' | 'hostname'>

/** Delta state shared by the writer and the reader: each observation is stored relative to the one before. */
interface State { ts: number, off: number, src: string, lifetime: number | undefined, subnet: number | undefined, client: Client, server: string | undefined }

function fresh (): State {
  return { ts: 0, off: 0, src: '', lifetime: undefined, subnet: undefined, client: {}, server: undefined }
}

function sameClient (a: Client, b: Client): boolean {
  return a.hwaddr === b.hwaddr && a.client_id === b.client_id && a.duid === b.duid && a.duid_ll === b.duid_ll && a.iaid === b.iaid && a.hostname === b.hostname
}

/** Appends observations, in position order, to a growing byte string. */
export class ObsWriter {
  private buf: Buffer
  length = 0
  /** Observations written. */
  n = 0
  private st: State = fresh()

  constructor (capacity = 64) {
    this.buf = Buffer.allocUnsafe(capacity)
  }

  /**
   * A writer over stored bytes whose delta state is read only when something is added: a key
   * read back into memory is often not appended to (its last interval was closed) — decoding
   * it up front was most of a cache miss.
   */
  static over (data: Buffer, n: number): ObsWriter {
    const w = new ObsWriter(0)
    w.stored = data
    w.n = n
    w.length = data.byteLength
    return w
  }

  private stored: Buffer | undefined

  private materialize (data: Buffer): void {
    this.stored = undefined
    const st = fresh()
    readObs(data, NO_KEY, st)
    this.buf = Buffer.allocUnsafe(data.byteLength + 64)
    this.resume(data, this.n, st)
  }

  /** Takes over what another writer wrote: its bytes, count and final state (resumeObs). */
  resume (data: Uint8Array, n: number, st: State): void {
    this.room(data.byteLength)
    this.buf.set(data, 0)
    this.length = data.byteLength
    this.n = n
    this.st = st
  }

  bytes (): Buffer {
    if (this.stored !== undefined) return this.stored
    return this.buf.subarray(0, this.length)
  }

  private room (n: number): void {
    if (this.length + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + n))
    this.buf.copy(next, 0, 0, this.length)
    this.buf = next
  }

  private byte (b: number): void {
    this.room(1)
    this.buf[this.length++] = b
  }

  /** Unsigned LEB128 of a safe integer (arithmetic, not bitwise: offsets reach 52 bits). */
  private uint (v: number): void {
    this.room(8)
    while (v >= 0x80) {
      this.buf[this.length++] = (v % 0x80) | 0x80
      v = Math.floor(v / 0x80)
    }
    this.buf[this.length++] = v
  }

  private int (v: number): void {
    this.uint(v >= 0 ? v * 2 : -v * 2 - 1)
  }

  private text (s: string): void {
    const n = Buffer.byteLength(s)
    this.uint(n)
    this.room(n)
    this.length += this.buf.write(s, this.length)
  }

  /** `s` packed (ByteReader.packed): hex — colon-separated when `colon` — as its bytes, anything else as text. */
  private packed (s: string, colon: boolean): void {
    if (colon) {
      const n = s.length < 3 * PACK_SCRATCH.length ? writeColonHex(s, PACK_SCRATCH, 0) : -1
      if (n >= 0) {
        this.uint(n * 2 + 1)
        this.room(n)
        this.buf.set(PACK_SCRATCH.subarray(0, n), this.length)
        this.length += n
        return
      }
    }
    const hex = !colon && PLAIN_HEX.test(s) ? s : undefined
    if (hex === undefined) {
      const n = Buffer.byteLength(s)
      this.uint(n * 2)
      this.room(n)
      this.length += this.buf.write(s, this.length)
      return
    }
    const n = hex.length / 2
    this.uint(n * 2 + 1)
    this.room(n)
    this.length += this.buf.write(hex, this.length, 'hex')
  }

  /**
   * Appends `o`, which must follow the observations added before. Holds LeaseObservation's
   * fields (the key's are the row's); what observe() never makes (a fractional lifetime, a seq
   * that is not sequenceOf(event_id)) is kept as JSON. No Object.keys or string building per
   * call: this runs once per lease-shaping event (1 µs of 4 with them, bench/lease-derive).
   */
  add (o: LeaseObservation): void {
    if (this.stored !== undefined) this.materialize(this.stored)
    this.n++
    const code = ACTION_CODE.get(o.action)
    const id = o.event_id
    const dash = id.lastIndexOf('-')
    // <source>-<hex offset>, the offset without leading zeros: the text can be rebuilt from it.
    let off = dash < 0 || id.length - dash - 1 > 13 || (id.charCodeAt(dash + 1) === 48 && id.length - dash > 2) ? -1 : 0
    for (let i = dash + 1; off >= 0 && i < id.length; i++) {
      const c = id.charCodeAt(i)
      const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1
      off = d < 0 ? -1 : off * 16 + d
    }
    const idForm = off >= 0 && dash < id.length - 1
    // seq is sequenceOf(event_id) (observe() makes it so), rebuilt when read: checked by its
    // length and offset digits only (the whole string cost 170 ns per event, bench/lease-derive).
    let seqOk = idForm ? o.seq.length === dash + 14 : o.seq === sequenceOf(id)
    for (let i = dash + 1, j = o.seq.length - (id.length - dash - 1); idForm && seqOk && i < id.length; i++, j++) seqOk = o.seq.charCodeAt(j) === id.charCodeAt(i)
    const odd = !seqOk || !Number.isSafeInteger(o.ts) || (o.lifetime !== undefined && !isCount(o.lifetime)) ||
      (o.subnet_id !== undefined && !isCount(o.subnet_id)) || (o.iaid !== undefined && !isCount(o.iaid)) || o.in_subnet !== undefined
    if (odd) {
      // Not the shape observe() makes: kept whole, outside the delta state.
      const { key: _k, scope: _s, type: _t, lease: _l, lo: _lo, hi: _hi, ...rest } = o
      this.byte(A_JSON)
      this.text(JSON.stringify(rest))
      return
    }
    const st = this.st
    let flags = code ?? A_OTHER
    let more = 0
    if (o.lifetime !== st.lifetime) flags |= F_LIFETIME
    if (o.subnet_id !== st.subnet) flags |= F_SUBNET
    if (!sameClient(o, st.client)) flags |= F_CLIENT
    if (!idForm) more |= X_RAW_ID
    else if (dash !== st.src.length || !id.startsWith(st.src)) more |= X_SOURCE | X_SOURCE_PACKED
    if (o.server !== st.server) more |= X_SERVER
    if (more !== 0) flags |= F_MORE
    this.byte(flags)
    if (more !== 0) this.byte(more)
    if (code === undefined) this.text(o.action)
    this.int(o.ts - st.ts)
    st.ts = o.ts
    if (idForm) {
      if ((more & X_SOURCE) !== 0) { st.src = id.slice(0, dash); this.packed(st.src, false) }
      this.int(off - st.off)
      st.off = off
    } else {
      this.text(o.event_id)
    }
    if ((more & X_SERVER) !== 0) { this.text(o.server ?? ''); st.server = o.server }
    if ((flags & F_LIFETIME) !== 0) { this.uint(o.lifetime === undefined ? 0 : o.lifetime + 1); st.lifetime = o.lifetime }
    if ((flags & F_SUBNET) !== 0) { this.uint(o.subnet_id === undefined ? 0 : o.subnet_id + 1); st.subnet = o.subnet_id }
    if ((flags & F_CLIENT) !== 0) {
      const mask = (o.hwaddr === undefined ? 0 : C_HWADDR) | (o.client_id === undefined ? 0 : C_CLIENT_ID) | (o.duid === undefined ? 0 : C_DUID) |
        (o.duid_ll === undefined ? 0 : C_DUID_LL) | (o.iaid === undefined ? 0 : C_IAID) | (o.hostname === undefined ? 0 : C_HOSTNAME)
      this.byte(mask | C_PACKED)
      if (o.hwaddr !== undefined) this.packed(o.hwaddr, true)
      if (o.client_id !== undefined) this.packed(o.client_id, true)
      if (o.duid !== undefined) this.packed(o.duid, true)
      if (o.duid_ll !== undefined) this.packed(o.duid_ll, true)
      if (o.iaid !== undefined) this.uint(o.iaid)
      if (o.hostname !== undefined) this.text(o.hostname)
      st.client = { hwaddr: o.hwaddr, client_id: o.client_id, duid: o.duid, duid_ll: o.duid_ll, iaid: o.iaid, hostname: o.hostname }
    }
  }
}

const NO_KEY: LeaseKey = { key: '', scope: '', type: 'V4', lease: '', lo: '', hi: '' }

/**
 * The event ids in bytes ObsWriter wrote, and the position (ts, seq) of the last observation:
 * what a key read back into memory needs, without making the observations.
 */
export function readIds (data: Uint8Array): { ids: string[], ts: number, seq: string } {
  const r = new ByteReader(data)
  const ids: string[] = []
  let ts = 0
  let off = 0
  let src = ''
  let lastTs = -Infinity
  /** The last observation's seq when it was stored whole (JSON), else undefined: sequenceOf its id. */
  let lastSeq: string | undefined
  while (!r.done) {
    const flags = r.byte()
    const a = flags & 0x0f
    if (a === A_JSON) {
      const o = JSON.parse(r.text()) as { event_id: string, ts: number, seq: string }
      ids.push(o.event_id)
      lastTs = o.ts
      lastSeq = o.seq
      continue
    }
    const more = (flags & F_MORE) !== 0 ? r.byte() : 0
    if (a === A_OTHER) r.skip()
    ts += r.int()
    let id: string
    if ((more & X_RAW_ID) !== 0) {
      id = r.text()
    } else {
      if ((more & X_SOURCE) !== 0) src = (more & X_SOURCE_PACKED) !== 0 ? r.packed(false) : r.text()
      off += r.int()
      id = `${src}-${off.toString(16)}`
    }
    if ((more & X_SERVER) !== 0) r.skip()
    if ((flags & F_LIFETIME) !== 0) r.uint()
    if ((flags & F_SUBNET) !== 0) r.uint()
    if ((flags & F_CLIENT) !== 0) {
      const mask = r.byte()
      const packed = (mask & C_PACKED) !== 0
      if ((mask & C_HWADDR) !== 0) r.skip(packed)
      if ((mask & C_CLIENT_ID) !== 0) r.skip(packed)
      if ((mask & C_DUID) !== 0) r.skip(packed)
      if ((mask & C_DUID_LL) !== 0) r.skip(packed)
      if ((mask & C_IAID) !== 0) r.uint()
      if ((mask & C_HOSTNAME) !== 0) r.skip()
    }
    ids.push(id)
    lastTs = ts
    lastSeq = undefined
  }
  return { ids, ts: lastTs, seq: lastSeq ?? sequenceOf(ids[ids.length - 1] ?? '') }
}

/**
 * An ObsWriter holding `data` (as one wrote it) ready to append to, and the observations in it:
 * a key read back into memory is not encoded again.
 */
export function resumeObs (data: Uint8Array, k: LeaseKey): { writer: ObsWriter, obs: LeaseObservation[] } {
  const st = fresh()
  const obs = readObs(data, k, st)
  const writer = new ObsWriter(data.byteLength + 64)
  writer.resume(data, obs.length, st)
  return { writer, obs }
}

/** The observations of a byte string ObsWriter wrote, for the key they belong to. `st`: receives the final delta state. */
export function readObs (data: Uint8Array, k: LeaseKey, st: State = fresh()): LeaseObservation[] {
  const out: LeaseObservation[] = []
  const r = new ByteReader(data)
  let client: Client = {}
  while (!r.done) {
    const flags = r.byte()
    const a = flags & 0x0f
    if (a === A_JSON) {
      out.push({ ...(JSON.parse(r.text()) as Omit<LeaseObservation, keyof LeaseKey>), key: k.key, scope: k.scope, type: k.type, lease: k.lease, lo: k.lo, hi: k.hi })
      continue
    }
    const more = (flags & F_MORE) !== 0 ? r.byte() : 0
    const action = a === A_OTHER ? r.text() : ACTIONS[a] as string
    st.ts += r.int()
    let id: string
    if ((more & X_RAW_ID) !== 0) {
      id = r.text()
    } else {
      if ((more & X_SOURCE) !== 0) st.src = (more & X_SOURCE_PACKED) !== 0 ? r.packed(false) : r.text()
      st.off += r.int()
      id = `${st.src}-${st.off.toString(16)}`
    }
    if ((more & X_SERVER) !== 0) { const v = r.text(); st.server = v === '' ? undefined : v }
    if ((flags & F_LIFETIME) !== 0) { const v = r.uint(); st.lifetime = v === 0 ? undefined : v - 1 }
    if ((flags & F_SUBNET) !== 0) { const v = r.uint(); st.subnet = v === 0 ? undefined : v - 1 }
    if ((flags & F_CLIENT) !== 0) {
      const mask = r.byte()
      client = {}
      const ident = (mask & C_PACKED) !== 0 ? () => r.packed(true) : () => r.text()
      if ((mask & C_HWADDR) !== 0) client.hwaddr = ident()
      if ((mask & C_CLIENT_ID) !== 0) client.client_id = ident()
      if ((mask & C_DUID) !== 0) client.duid = ident()
      if ((mask & C_DUID_LL) !== 0) client.duid_ll = ident()
      if ((mask & C_IAID) !== 0) client.iaid = r.uint()
      if ((mask & C_HOSTNAME) !== 0) client.hostname = r.text()
    }
    const o: LeaseObservation = { event_id: id, ts: st.ts, seq: sequenceOf(id), key: k.key, scope: k.scope, type: k.type, lease: k.lease, lo: k.lo, hi: k.hi, action }
    if (st.lifetime !== undefined) o.lifetime = st.lifetime
    if (st.subnet !== undefined) o.subnet_id = st.subnet
    if (st.server !== undefined) o.server = st.server
    out.push(Object.assign(o, client))
    st.client = client
  }
  return out
}

const CERTAINTIES: readonly Certainty[] = ['observed', 'inferred', 'gap']

/**
 * An interval's fields beyond its key and indexed columns, as a JSON array:
 * [end_reason, certainty, extensions, evidence, lifetime, subnet_id, iaid, hostname, id, servers].
 * Evidence names the observations held in the same row by index (a run i..i+m as i, -m), any
 * other event by its id; hostname only when its column (lowercased) does not give it back, id
 * only when it is not the hash of the key and the first evidence.
 */
export function intervalDoc (iv: LeaseInterval, ids: readonly string[], derivedId: string): string {
  // Built as text: arrays and JSON.stringify per written row were 0.4 µs per event (bench/lease-derive).
  let ev = ''
  let last = -2
  let run = 0
  for (const id of iv.evidence) {
    // The evidence is the latest observations and the first: a scan from the end finds them.
    const i = ids.lastIndexOf(id)
    if (i >= 0 && i === last + 1 && run > 0) {
      run++
    } else {
      if (run > 0) ev += `,-${run}`
      run = 0
      if (i >= 0 && i === last + 1 && ev !== '') run = 1
      else ev += (ev === '' ? '' : ',') + (i >= 0 ? String(i) : JSON.stringify(id))
    }
    last = i >= 0 ? i : -2
  }
  if (run > 0) ev += `,-${run}`
  const tail = [iv.lifetime ?? null, iv.subnet_id ?? null, iv.iaid ?? null,
    iv.hostname !== undefined && iv.hostname !== iv.hostname.toLowerCase() ? iv.hostname : null,
    iv.id === derivedId ? null : iv.id, iv.servers ?? null]
  let end = tail.length
  while (end > 0 && tail[end - 1] === null) end--
  let rest = ''
  for (let i = 0; i < end; i++) rest += ',' + JSON.stringify(tail[i])
  return `[${END_REASONS.indexOf(iv.end_reason)},${CERTAINTIES.indexOf(iv.certainty)},${iv.extensions},[${ev}]${rest}]`
}

/** The identity columns of an interval row (the indexed ones). */
export interface Identity { start: number | null, pos: number, hwaddr: string | null, client_id: string | null, duid: string | null, duid_ll: string | null, hostname: string | null }

export function identityOf (iv: LeaseInterval): Identity {
  return { start: iv.start, pos: iv.start ?? iv.end ?? 0, hwaddr: iv.hwaddr ?? null, client_id: iv.client_id ?? null, duid: iv.duid ?? null, duid_ll: iv.duid_ll ?? null, hostname: iv.hostname?.toLowerCase() ?? null }
}

/** Whether `iv` still has the identity columns `a` (no object made: this runs per written row). */
export function sameIdentity (a: Identity, iv: LeaseInterval): boolean {
  return a.start === iv.start && a.pos === (iv.start ?? iv.end ?? 0) && a.hwaddr === (iv.hwaddr ?? null) && a.client_id === (iv.client_id ?? null) &&
    a.duid === (iv.duid ?? null) && a.duid_ll === (iv.duid_ll ?? null) && a.hostname === (iv.hostname === undefined ? null : iv.hostname.toLowerCase())
}

/** An interval from its row: key fields, identity columns, doc, and the ids of the observations in the row. */
export function intervalOf (k: LeaseKey, row: Identity & { end: number | null, doc: string }, ids: readonly string[], idOf: (key: string, first: string) => string, parsed?: unknown[]): LeaseInterval {
  const d = (parsed ?? JSON.parse(row.doc)) as [number, number, number, Array<number | string>, (number | null)?, (number | null)?, (number | null)?, (string | null)?, (string | null)?, (string[] | null)?]
  const evidence: string[] = []
  let last = -1
  for (const e of d[3]) {
    if (typeof e === 'string') { evidence.push(e); continue }
    if (e >= 0) { evidence.push(ids[e] as string); last = e; continue }
    for (let i = 1; i <= -e; i++) evidence.push(ids[last + i] as string)
    last += -e
  }
  const iv: LeaseInterval = {
    id: d[8] ?? idOf(k.key, evidence[0] ?? ''),
    key: k.key,
    scope: k.scope,
    type: k.type,
    lease: k.lease,
    lo: k.lo,
    hi: k.hi,
    start: row.start,
    end: row.end,
    end_reason: END_REASONS[d[0]] as EndReason,
    certainty: CERTAINTIES[d[1]] as Certainty,
    extensions: d[2],
    evidence,
    origin: 'log'
  }
  if (d[5] !== undefined && d[5] !== null) iv.subnet_id = d[5]
  if (d[4] !== undefined && d[4] !== null) iv.lifetime = d[4]
  if (row.hwaddr !== null) iv.hwaddr = row.hwaddr
  if (row.client_id !== null) iv.client_id = row.client_id
  if (row.duid !== null) iv.duid = row.duid
  if (row.duid_ll !== null) iv.duid_ll = row.duid_ll
  if (d[6] !== undefined && d[6] !== null) iv.iaid = d[6]
  const host = d[7] ?? row.hostname
  if (host !== null) iv.hostname = host
  if (d[9] !== undefined && d[9] !== null) iv.servers = d[9]
  return iv
}
