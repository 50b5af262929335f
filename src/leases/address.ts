import { isIPv4, isIPv6 } from 'node:net'
import { UsageError } from '../errors.js'

/**
 * Addresses and prefixes as fixed-width hex keys: `4:` + 8 hex digits or `6:` + 32. Within a
 * family they sort like the numbers they are, so "is this address inside that prefix" is a
 * range comparison in SQL and in Elasticsearch alike (both stores keep `lo`/`hi` keywords).
 */
export interface AddressRange {
  readonly family: 4 | 6
  /** Canonical text: dotted quad, or RFC 5952 (as Kea prints it). */
  readonly text: string
  /** Prefix length (32 or 128 for a single address). */
  readonly length: number
  readonly lo: string
  readonly hi: string
}

function v4Hex (text: string): string {
  return text.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('')
}

function v6Hex (text: string): string {
  let s = text.toLowerCase()
  const zone = s.indexOf('%')
  if (zone >= 0) s = s.slice(0, zone)
  // An embedded dotted quad (::ffff:192.0.2.1) becomes two groups.
  const lastColon = s.lastIndexOf(':')
  const tail = s.slice(lastColon + 1)
  if (tail.includes('.')) {
    const h = v4Hex(tail)
    s = `${s.slice(0, lastColon + 1)}${h.slice(0, 4)}:${h.slice(4)}`
  }
  const [head, rest] = s.split('::') as [string, string | undefined]
  const left = head === '' ? [] : head.split(':')
  const right = rest === undefined || rest === '' ? [] : rest.split(':')
  const fill = rest === undefined ? 0 : 8 - left.length - right.length
  return [...left, ...Array<string>(fill).fill('0'), ...right].map((g) => g.padStart(4, '0')).join('')
}

/** RFC 5952 text from 32 hex digits. */
function v6Text (hex: string): string {
  return v6TextOfGroups(Array.from({ length: 8 }, (_, i) => parseInt(hex.slice(i * 4, i * 4 + 4), 16)))
}

/** `hex` with every bit after the first `length` set to `fill`. */
function maskHex (hex: string, length: number, fill: '0' | 'f'): string {
  const whole = length >> 2
  if (whole >= hex.length) return hex
  const partial = length & 3
  let out = hex.slice(0, whole)
  if (partial > 0) {
    const v = parseInt(hex[whole] as string, 16)
    const hostMask = (1 << (4 - partial)) - 1
    out += (fill === '0' ? v & ~hostMask : v | hostMask).toString(16)
  }
  return out + fill.repeat(hex.length - out.length)
}

/**
 * Ranges of the texts parsed lately, shared (readonly). A log repeats its addresses (each
 * renewal), and every lease event's address comes through here: parsing one allocated ~600 B
 * (~13 % of a bench/e2e write's garbage: allocation sampling of 300k INFO events). Bounded:
 * cleared when full.
 */
const recent = new Map<string, AddressRange>()
const RECENT_MAX = 16_384

/** Parses `192.0.2.1`, `2001:db8::1` or a prefix `2001:db8::/56`; throws KEATRAIL_ERR_USAGE otherwise. */
export function parseAddressOrPrefix (input: string): AddressRange {
  let r = recent.get(input)
  if (r === undefined) {
    r = parseUncached(input)
    if (recent.size >= RECENT_MAX) recent.clear()
    recent.set(input, r)
  }
  return r
}

function parseUncached (input: string): AddressRange {
  // Every lease event and every row a CIDR query looks at comes through here: plain addresses
  // and prefixes take a hand-written scan (0.12 µs instead of 1.9 for IPv4, 0.9 instead of 6.0
  // for IPv6: npm run bench:address); anything else the general path, which also explains errors.
  const slash = input.indexOf('/')
  if (slash < 0) return plainAddress(input) ?? parseGeneral(input)
  const length = prefixLength(input, slash + 1)
  const a = length === undefined ? undefined : plainAddress(input.slice(0, slash))
  if (a === undefined || length === undefined || length > (a.family === 4 ? 32 : 128)) return parseGeneral(input)
  return rangeOf(a.family, a.lo.slice(2), length)
}

/** The range of the first `length` bits of the address `hex`. */
function rangeOf (family: 4 | 6, hex: string, length: number): AddressRange {
  const lo = maskHex(hex, length, '0')
  const canonical = family === 4 ? v4TextOfHex(lo) : v6Text(lo)
  return { family, text: length === (family === 4 ? 32 : 128) ? canonical : `${canonical}/${length}`, length, lo: `${family}:${lo}`, hi: `${family}:${maskHex(hex, length, 'f')}` }
}

/** The 1-3 digits from `at` to the end of `s` as a number, or undefined. */
function prefixLength (s: string, at: number): number | undefined {
  const digits = s.length - at
  if (digits < 1 || digits > 3) return undefined
  let v = 0
  for (let i = at; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 48 || c > 57) return undefined
    v = v * 10 + c - 48
  }
  return v
}

function v4TextOfHex (hex: string): string {
  return `${parseInt(hex.slice(0, 2), 16)}.${parseInt(hex.slice(2, 4), 16)}.${parseInt(hex.slice(4, 6), 16)}.${parseInt(hex.slice(6, 8), 16)}`
}

function parseGeneral (input: string): AddressRange {
  const text = input.trim()
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const lenText = slash < 0 ? undefined : text.slice(slash + 1)
  let family: 4 | 6
  let hex: string
  if (isIPv4(addr)) { family = 4; hex = v4Hex(addr) } else if (isIPv6(addr)) { family = 6; hex = v6Hex(addr) } else {
    throw new UsageError(`${JSON.stringify(input)} is not an IPv4 or IPv6 address${slash < 0 ? '' : ' prefix'}`)
  }
  const max = family === 4 ? 32 : 128
  let length = max
  if (lenText !== undefined) {
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) throw new UsageError(`${JSON.stringify(input)}: the prefix length must be 0…${max}`)
    length = Number(lenText)
  }
  return rangeOf(family, hex, length)
}

const HEX = '0123456789abcdef'

/** Value of a hex digit's char code, or -1. */
function hexValue (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

function hex4 (v: number): string {
  return (HEX[v >> 12] as string) + (HEX[(v >> 8) & 15] as string) + (HEX[(v >> 4) & 15] as string) + (HEX[v & 15] as string)
}

/**
 * A plain address, exactly as parseGeneral would return it, or undefined for anything else
 * (zones, embedded IPv4, surrounding space, invalid text), which parseGeneral decides.
 * Accepts a subset of what node:net accepts: dotted quads without leading zeros, and hex
 * groups with at most one `::`.
 */
function plainAddress (s: string): AddressRange | undefined {
  const n = s.length
  if (n < 2 || n > 39) return undefined
  if (s.includes('.')) {
    let hex = ''
    let i = 0
    for (let octet = 0; octet < 4; octet++) {
      if (octet > 0) { if (s.charCodeAt(i) !== 46) return undefined; i++ }
      const start = i
      let v = 0
      while (i < n && i - start < 3) {
        const c = s.charCodeAt(i)
        if (c < 48 || c > 57) break
        v = v * 10 + c - 48
        i++
      }
      const digits = i - start
      if (digits === 0 || v > 255 || (digits > 1 && s.charCodeAt(start) === 48)) return undefined
      hex += (HEX[v >> 4] as string) + (HEX[v & 15] as string)
    }
    if (i !== n) return undefined
    const key = `4:${hex}`
    return { family: 4, text: s, length: 32, lo: key, hi: key }
  }
  const groups: number[] = []
  let gap = -1
  let i = 0
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return undefined
    gap = 0
    i = 2
  }
  while (i < n) {
    const start = i
    let v = 0
    while (i < n) {
      const d = hexValue(s.charCodeAt(i))
      if (d < 0) break
      v = v * 16 + d
      i++
    }
    if (i === start || i - start > 4) return undefined
    groups.push(v)
    if (i === n) break
    if (s.charCodeAt(i) !== 58) return undefined
    i++
    if (i < n && s.charCodeAt(i) === 58) {
      if (gap >= 0) return undefined
      gap = groups.length
      i++
    } else if (i === n) {
      return undefined
    }
  }
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return undefined
  if (gap >= 0) groups.splice(gap, 0, ...Array<number>(8 - groups.length).fill(0))
  let hex = ''
  for (const g of groups) hex += hex4(g)
  const key = `6:${hex}`
  return { family: 6, text: v6TextOfGroups(groups), length: 128, lo: key, hi: key }
}

/** RFC 5952 text of 8 groups: lowercase, no leading zeros, the first longest zero run (≥ 2) as `::`. */
function v6TextOfGroups (groups: readonly number[]): string {
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) { best = i; bestLen = j - i }
    i = j
  }
  const text = (from: number, to: number): string => groups.slice(from, to).map((g) => g.toString(16)).join(':')
  if (best < 0) return text(0, 8)
  return `${text(0, best)}::${text(best + bestLen, 8)}`
}

/** Only a single address (no prefix length other than /32 or /128). */
export function parseAddress (input: string): AddressRange {
  const r = parseAddressOrPrefix(input)
  if (r.length !== (r.family === 4 ? 32 : 128)) throw new UsageError(`${JSON.stringify(input)} is a prefix; give one address`)
  return r
}

// --- client identifiers -------------------------------------------------------------------

/** Hex bytes from any common spelling: `02:00:00:00:00:0A`, `02-00-…`, `0200.0000.000a`, `020000…`. */
function hexBytes (input: string, what: string): string[] {
  const s = input.trim().toLowerCase()
  if (s === '') throw new UsageError(`empty ${what}`)
  let bytes: string[]
  if (/^[0-9a-f]{1,2}([:-][0-9a-f]{1,2})+$/.test(s)) {
    bytes = s.split(/[:-]/).map((b) => b.padStart(2, '0'))
  } else {
    const compact = s.replace(/[.\s]/g, '')
    if (!/^[0-9a-f]+$/.test(compact) || compact.length % 2 !== 0) {
      throw new UsageError(`${JSON.stringify(input)} is not a valid ${what}: expected hex bytes such as 02:00:00:00:00:0a, 02-00-00-00-00-0A or 02000000000a`)
    }
    bytes = compact.match(/../g) as string[]
  }
  return bytes
}

/** A MAC in Kea's form (lowercase, colons). Accepts a leading hwtype byte 01 (Ethernet) on a 7-byte value. */
export function normalizeMac (input: string): string {
  let b = hexBytes(input, 'MAC address')
  if (b.length === 7 && b[0] === '01') b = b.slice(1)
  if (b.length < 1 || b.length > 20) throw new UsageError(`${JSON.stringify(input)} is not a valid MAC address (1…20 bytes)`)
  return b.join(':')
}

/** A DUID in Kea's form. */
export function normalizeDuid (input: string): string {
  const b = hexBytes(input, 'DUID')
  if (b.length < 1 || b.length > 130) throw new UsageError(`${JSON.stringify(input)} is not a valid DUID (1…130 bytes)`)
  return b.join(':')
}

/** A DHCPv4 client identifier (option 61, type byte included) in Kea's form. */
export function normalizeClientId (input: string): string {
  const b = hexBytes(input, 'client identifier')
  if (b.length < 2 || b.length > 255) throw new UsageError(`${JSON.stringify(input)} is not a valid client identifier (2…255 bytes)`)
  return b.join(':')
}

/**
 * The link-layer address inside a DUID-LLT (type 1) or DUID-LL (type 3), so that a MAC finds
 * a DHCPv6 client's leases and a DUID given without its type bytes still matches.
 */
export function duidLinkLayer (duid: string): string | undefined {
  // Normalized DUIDs are `xx:` bytes: the type is chars 0-4, the link-layer address follows
  // the 8 bytes of a DUID-LLT (type, hwtype, time) or the 4 of a DUID-LL (type, hwtype).
  if (duid.startsWith('00:01:') && duid.length > 24 && duid.charCodeAt(23) === 58) return duid.slice(24)
  if (duid.startsWith('00:03:') && duid.length > 12 && duid.charCodeAt(11) === 58) return duid.slice(12)
  return undefined
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/**
 * RFC 3339 with an offset (or Z), epoch ms digits, `now`, or `now-15m` / `now+1h` (s, m, h, d,
 * w) → epoch ms; anything else is a usage error. Relative times are resolved against `now` here,
 * once, so every store and the API read the same instant (the CLI, the query language and the
 * API's from/to all come through this function).
 */
export function parseTime (input: string, what = 'time', now = Date.now()): number {
  const s = input.trim()
  const rel = /^now(?:([-+])(\d{1,6})([smhdw]))?$/.exec(s)
  if (rel !== null) {
    if (rel[1] === undefined) return now
    const delta = Number(rel[2]) * (UNIT_MS[rel[3] as string] as number)
    return rel[1] === '-' ? now - delta : now + delta
  }
  if (/^\d{10,16}$/.test(s)) return s.length > 13 ? Math.floor(Number(s) / 1000) : Number(s)
  if (!/^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/i.test(s)) {
    throw new UsageError(`${what} ${JSON.stringify(input)} must be RFC 3339 with an offset, e.g. 2026-11-24T04:16:00Z or 2026-11-24T05:16:00+01:00, or now, now-15m, now-24h, now-7d`)
  }
  const ms = Date.parse(s.replace(' ', 'T'))
  if (Number.isNaN(ms)) throw new UsageError(`${what} ${JSON.stringify(input)} is not a valid date`)
  return ms
}

/**
 * The `lo` keys of every prefix that could contain this address (one per prefix length): an
 * IA_PD lookup is then an indexed `lo IN (…)` instead of a range scan over all prefixes.
 * DHCPv4 delegates no prefixes, so an IPv4 address has one key, its own: asking 33 made every
 * `lease at` of an IPv4 address 33 index probes per statement (half of a batch attribution's
 * CPU at 10M events, issue 22).
 */
export function containingPrefixLos (lo: string): string[] {
  if (!lo.startsWith('6:')) return [lo]
  const hex = lo.slice(2)
  const out = new Set<string>()
  for (let len = 0; len <= 128; len++) out.add(`6:${maskHex(hex, len, '0')}`)
  return [...out]
}
