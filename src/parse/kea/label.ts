/**
 * Client labels Kea puts in front of packet and lease messages (kea-logging.md §4):
 *   v4 packet:  [hwtype=1 02:00:00:00:00:0a], cid=[00:63:…|no info], tid=0x7f74d74a
 *   v4 lease:   [hwtype=1 02:00:00:00:00:0e], cid=[01:02:…]             (no tid)
 *   v6 ≤2.5.3:  duid=[00:03:00:01:…], tid=0x1e2e5f
 *   v6 ≥2.5.4:  duid=[…], [no hwaddr info], tid=0x…
 *   v6 lease:   duid=[…], [hwtype=1 02:00:00:00:06:0c]                  (no tid)
 */
export interface ClientLabel {
  hwtype?: number
  hwaddr?: string
  clientId?: string
  duid?: string
  transactionId?: string
}

/**
 * Regex source matching any label form, for message rule forms. Its capture groups deliver
 * the parts directly (no second scan of the text), in the order of LABEL_GROUPS.
 */
export const LABEL_SOURCE =
  '(?:\\[(?:hwtype=(\\d{1,5}) ([0-9a-f:]*)|no hwaddr info)\\], cid=\\[([^\\]]*)\\]' +
  '|duid=\\[([^\\]]*)\\](?:, \\[(?:hwtype=(\\d{1,5}) ([0-9a-f:]*)|no hwaddr info)\\])?)' +
  '(?:, tid=(0x[0-9a-f]+))?(?: \\(malformed [a-z\\- ]+\\))?'

/** What each capture group of LABEL_SOURCE holds. */
export const LABEL_GROUPS = ['hwtype', 'hwaddr', 'client_id', 'duid', 'hwtype', 'hwaddr', 'transaction_id'] as const

/** Parses a label by position; returns false when the text is not label-shaped. */
export function parseLabel (text: string, out: ClientLabel): boolean {
  let i = 0
  if (text.startsWith('duid=[', i)) {
    const end = text.indexOf(']', i + 6)
    if (end < 0) return false
    const duid = text.slice(i + 6, end)
    if (duid !== 'no info' && duid.length > 0) out.duid = duid
    i = end + 1
    if (text.startsWith(', [', i)) {
      const hwEnd = text.indexOf(']', i + 3)
      if (hwEnd < 0) return false
      readHw(text.slice(i + 3, hwEnd), out)
      i = hwEnd + 1
    }
  } else if (text.charCodeAt(i) === 91 /* [ */) {
    const hwEnd = text.indexOf(']', i + 1)
    if (hwEnd < 0) return false
    readHw(text.slice(i + 1, hwEnd), out)
    i = hwEnd + 1
    if (!text.startsWith(', cid=[', i)) return false
    const cidEnd = text.indexOf(']', i + 7)
    if (cidEnd < 0) return false
    const cid = text.slice(i + 7, cidEnd)
    if (cid !== 'no info' && cid.length > 0) out.clientId = cid
    i = cidEnd + 1
  } else {
    return false
  }
  if (text.startsWith(', tid=0x', i)) {
    let j = i + 8
    while (j < text.length && isHex(text.charCodeAt(j))) j++
    out.transactionId = text.slice(i + 6, j)
  }
  return true
}

function readHw (hw: string, out: ClientLabel): void {
  if (!hw.startsWith('hwtype=')) return
  const space = hw.indexOf(' ')
  if (space < 0) return
  const type = hw.slice(7, space)
  if (!/^\d{1,5}$/.test(type)) return
  out.hwtype = Number(type)
  const addr = hw.slice(space + 1)
  if (addr.length > 0) out.hwaddr = addr
}

function isHex (c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102)
}

const ecsMacCache = new Map<string, string>()

/**
 * Kea's lowercase colon form → ECS `client.mac` (uppercase, hyphens).
 * NOTE: the conversion costs ~350 ns; a client's MAC recurs in every renewal, so a bounded
 * cache brings it to ~35 ns (bench/parse).
 */
export function toEcsMac (kea: string): string {
  let ecs = ecsMacCache.get(kea)
  if (ecs === undefined) {
    ecs = kea.toUpperCase().replaceAll(':', '-')
    if (ecsMacCache.size >= 16_384) ecsMacCache.clear()
    ecsMacCache.set(kea, ecs)
  }
  return ecs
}
