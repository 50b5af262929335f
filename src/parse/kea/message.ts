import { isIPv6 } from 'node:net'
import type { KeaEvent } from '../event.js'
import { parseLabel, toEcsMac, type ClientLabel } from './label.js'
import type { GroupRole, MessageRule, RuleSet } from './rules.js'

/** Kea prints 0xFFFFFFFF lifetimes as "infinity" (Lease::lifetimeToText). */
export const INFINITE_LIFETIME = 4294967295

/** [A-Z][A-Z0-9_]*, by character codes (cheaper than a regex on the hot path). */
function isMessageId (id: string): boolean {
  const first = id.charCodeAt(0)
  if (!(first >= 65 && first <= 90)) return false
  for (let i = 1; i < id.length; i++) {
    const c = id.charCodeAt(i)
    if (!((c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95)) return false
  }
  return true
}
/** Shared by every lease event: treat as read-only. */
const NETWORK = ['network']

export interface MessageResult {
  /** The rule whose form matched, if any. */
  rule: MessageRule | undefined
  /** A rule exists for the ID but none of its forms matched the text. */
  formMismatch: boolean
}

// One result object, overwritten by each call: the caller reads it at once (no allocation
// per record on the hot path).
const result: MessageResult = { rule: undefined, formMismatch: false }
function done (rule: MessageRule | undefined, formMismatch: boolean): MessageResult {
  result.rule = rule
  result.formMismatch = formMismatch
  return result
}


type Kea = KeaEvent['kea']
type Lease = NonNullable<Kea['lease']>

/**
 * Interprets `%m` (message ID + text) into `event.code`, `event.action` and the client and
 * lease fields. Rules (parsers/messages/*.yaml) give exact fields for lease-lifecycle IDs;
 * every other message still gets its label, addresses and MAC by a generic scan.
 */
export function interpretMessage (message: string, event: KeaEvent, rules: RuleSet): MessageResult {
  const space = message.indexOf(' ')
  const id = space < 0 ? message : message.slice(0, space)
  if (!isMessageId(id)) {
    scanGeneric(message, event)
    return done(undefined, false)
  }
  event.event.code = id
  const text = space < 0 ? '' : message.slice(space + 1)
  const rule = rules.get(id)
  if (rule !== undefined) {
    for (let f = 0; f < rule.forms.length; f++) {
      const form = rule.forms[f] as MessageRule['forms'][number]
      if (text.length > form.maxText) continue
      const m = form.regex.exec(text)
      if (m === null) continue
      applyRule(rule, form.groups, m, event)
      return done(rule, false)
    }
    scanGeneric(text, event)
    return done(undefined, true)
  }
  scanGeneric(text, event)
  return done(undefined, false)
}

// NOTE: nested objects are created whole, every field present (undefined until set), so all
// events share one hidden class per object and property access stays monomorphic; adding
// fields one by one in varying orders cost a third of the parse time (bench/parse profile).
function lease (kea: Kea): Lease {
  kea.lease ??= { address: undefined, prefix: undefined, prefix_length: undefined, lifetime: undefined, probation: undefined, type: undefined, state: undefined }
  return kea.lease
}

type Client = NonNullable<KeaEvent['client']>
function client (event: KeaEvent): Client {
  event.client ??= { ip: undefined, mac: undefined }
  return event.client
}

type Related = NonNullable<KeaEvent['related']>
function related (event: KeaEvent): Related {
  event.related ??= { ip: undefined, hosts: undefined }
  return event.related
}

function applyRule (rule: MessageRule, groups: GroupRole[], m: RegExpExecArray, event: KeaEvent): void {
  const kea = event.kea
  if (rule.action !== undefined) {
    event.event.action = rule.action
    event.event.category = NETWORK
  }
  let prefixLength: number | undefined
  let prefix: string | undefined
  let requested: string | undefined
  let ciaddr: string | undefined
  for (let r = 0; r < groups.length; r++) {
    const v = m[r + 1]
    if (v === undefined) continue
    switch (groups[r]) {
      case 'label_hwtype': kea.hwtype = Number(v); break
      case 'label_hwaddr':
        if (v.length > 0) {
          kea.hwaddr = v
          client(event).mac = toEcsMac(v)
        }
        break
      case 'label_client_id': if (v !== 'no info' && v.length > 0) kea.client_id = v; break
      case 'label_duid': if (v !== 'no info' && v.length > 0) kea.duid = v; break
      case 'label_transaction_id': kea.transaction_id = v; break
      case 'address': setAddress(event, v); break
      case 'prefix': prefix = v; break
      case 'prefix_length': prefixLength = Number(v); break
      case 'lifetime': lease(kea).lifetime = v === 'infinity' ? INFINITE_LIFETIME : Number(v); break
      case 'probation': lease(kea).probation = Number(v); break
      case 'iaid': kea.iaid = Number(v); break
      case 'owner_iaid': (kea.lease_owner ??= {}).iaid = Number(v); break
      case 'owner_duid': if (v !== 'no info') (kea.lease_owner ??= {}).duid = v.toLowerCase(); break
      case 'subnet_id': kea.subnet_id = Number(v); break
      case 'subnet': kea.subnet = v; break
      case 'shared_network': if (v !== '(none)') kea.shared_network = v; break
      case 'hostname': setHostname(event, v); break
      case 'fqdn_option': {
        const dn = /domain-name='([^']*)'/.exec(v)
        if (dn?.[1]) setHostname(event, dn[1])
        break
      }
      case 'lease_type': lease(kea).type = v as Lease['type']; break
      case 'state': lease(kea).state = v; break
      case 'requested': if (v !== '(no address)') requested = v; break
      case 'ciaddr': ciaddr = v; break
      case 'source': (event.source ??= {}).ip = v; addRelatedIp(event, v); break
      case 'server': (kea.ha ??= {}).server = v; break
      case 'peer': (kea.ha ??= {}).peer = v; break
      case 'params': applyParams(v, event); break
      case 'lease_dump': applyLeaseDump(v, event); break
      case 'count':
      case 'text':
        break
    }
  }
  if (prefix !== undefined) {
    if (rule.prefix128IsAddress && prefixLength === 128) {
      setAddress(event, prefix)
      lease(kea).type = 'IA_NA'
    } else {
      const l = lease(kea)
      l.prefix = prefix
      if (prefixLength !== undefined) l.prefix_length = prefixLength
      if (rule.prefix128IsAddress) l.type = 'IA_PD'
      addRelatedIp(event, prefix)
    }
  }
  if (requested !== undefined || (ciaddr !== undefined && ciaddr !== '0.0.0.0')) {
    const addr = requested ?? (ciaddr as string)
    kea.requested_address = addr
    addRelatedIp(event, addr)
  }
  if (ciaddr !== undefined && ciaddr !== '0.0.0.0') addRelatedIp(event, ciaddr)
  if (rule.leaseType !== undefined && kea.lease?.type === undefined) lease(kea).type = rule.leaseType
  // Without an explicit type a v4 lease is V4 and a v6 address lease IA_NA (lease6-add's default).
  if (rule.action !== undefined && kea.lease !== undefined && kea.lease.type === undefined) {
    if (rule.family === 4) kea.lease.type = 'V4'
    else if (rule.family === 6 && kea.lease.address !== undefined) kea.lease.type = 'IA_NA'
  }
}

function setAddress (event: KeaEvent, addr: string): void {
  lease(event.kea).address = addr
  client(event).ip = addr
  addRelatedIp(event, addr)
}

function setHostname (event: KeaEvent, name: string): void {
  if (name.length === 0) return
  event.kea.hostname = name
  const r = related(event)
  r.hosts ??= []
  if (!r.hosts.includes(name)) r.hosts.push(name)
}

export function addRelatedIp (event: KeaEvent, ip: string): void {
  const r = related(event)
  const list = r.ip
  if (list === undefined) r.ip = [ip]
  else if (list.length < 32 && !list.includes(ip)) list.push(ip)
}

const scratchLabel: ClientLabel = {}

function applyLabel (text: string, event: KeaEvent): boolean {
  scratchLabel.hwtype = undefined
  scratchLabel.hwaddr = undefined
  scratchLabel.clientId = undefined
  scratchLabel.duid = undefined
  scratchLabel.transactionId = undefined
  if (!parseLabel(text, scratchLabel)) return false
  const kea = event.kea
  if (scratchLabel.hwtype !== undefined) kea.hwtype = scratchLabel.hwtype
  if (scratchLabel.hwaddr !== undefined) {
    kea.hwaddr = scratchLabel.hwaddr
    client(event).mac = toEcsMac(scratchLabel.hwaddr)
  }
  if (scratchLabel.clientId !== undefined) kea.client_id = scratchLabel.clientId
  if (scratchLabel.duid !== undefined) kea.duid = scratchLabel.duid
  if (scratchLabel.transactionId !== undefined) kea.transaction_id = scratchLabel.transactionId
  return true
}

/** lease_cmds parameters (Kea 2.2 logs the whole command arguments as JSON). */
function applyParams (json: string, event: KeaEvent): void {
  let p: Record<string, unknown>
  try {
    p = JSON.parse(json) as Record<string, unknown>
  } catch {
    const ip = /"ip-address"\s*:\s*"([^"]+)"/.exec(json)
    if (ip?.[1]) setAddress(event, ip[1])
    return
  }
  if (p === null || typeof p !== 'object') return
  const kea = event.kea
  const str = (k: string): string | undefined => typeof p[k] === 'string' ? p[k] as string : undefined
  const num = (k: string): number | undefined => typeof p[k] === 'number' ? p[k] as number : undefined
  const type = str('type')
  const ip = str('ip-address')
  const prefixLen = num('prefix-len')
  if (ip !== undefined) {
    if (type === 'IA_PD' || (prefixLen !== undefined && prefixLen < 128)) {
      const l = lease(kea)
      l.prefix = ip
      l.prefix_length = prefixLen ?? 128
      l.type = 'IA_PD'
      addRelatedIp(event, ip)
    } else {
      setAddress(event, ip)
      if (type === 'IA_NA') lease(kea).type = 'IA_NA'
    }
  }
  const hw = str('hw-address')
  if (hw !== undefined) {
    kea.hwaddr = hw.toLowerCase()
    client(event).mac = toEcsMac(hw)
  }
  const duid = str('duid')
  if (duid !== undefined) kea.duid = duid.toLowerCase()
  const cid = str('client-id')
  if (cid !== undefined) kea.client_id = cid.toLowerCase()
  const iaid = num('iaid')
  if (iaid !== undefined) kea.iaid = iaid
  const subnet = num('subnet-id')
  if (subnet !== undefined) kea.subnet_id = subnet
  const valid = num('valid-lft')
  if (valid !== undefined) lease(kea).lifetime = valid
  const host = str('hostname')
  if (host !== undefined) setHostname(event, host)
}

/** Lease4::toText / Lease6::toText blocks: "Key:<spaces>value" lines (DEBUG 55). */
function applyLeaseDump (dump: string, event: KeaEvent): void {
  const kea = event.kea
  for (const line of dump.split('\n')) {
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const key = line.slice(0, colon).trim()
    const value = line.slice(colon + 1).trim()
    if (value === '' || value === '(none)') continue
    switch (key) {
      case 'Address': setAddress(event, value); break
      case 'IAID': kea.iaid = Number(value); break
      case 'Valid life': lease(kea).lifetime = Number(value); break
      case 'DUID': kea.duid = value; break
      case 'Hardware addr':
        kea.hwaddr = value
        client(event).mac = toEcsMac(value)
        break
      case 'Subnet ID': kea.subnet_id = Number(value); break
      case 'State': lease(kea).state = value; break
      case 'Type': {
        const t = /^(IA_NA|IA_PD|IA_TA|V4)/.exec(value)
        if (t) lease(kea).type = t[1] as Lease['type']
        break
      }
      case 'Prefix length': {
        const n = Number(value)
        if (n < 128 && kea.lease?.address !== undefined) {
          const l = lease(kea)
          l.prefix = l.address
          l.prefix_length = n
          l.address = undefined
          if (event.client) event.client.ip = undefined
        }
        break
      }
    }
  }
}

const IPV4 = /(?<![\d.])(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}(?![\d.])/g
const IPV6_CANDIDATE = /(?<![\w:])(?=[0-9a-fA-F:]*:[0-9a-fA-F:]*:)[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![\w:])/g
const BYTE_STRING = /^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2})+$/

/**
 * For messages without a rule: the client label wherever it stands, and every IPv4/IPv6
 * address. Colon-separated byte strings (MACs, DUIDs, client-ids) are not addresses.
 */
export function scanGeneric (text: string, event: KeaEvent): void {
  let labelAt = text.indexOf('[hwtype=')
  if (labelAt < 0) labelAt = text.indexOf('[no hwaddr info]')
  const duidAt = text.indexOf('duid=[')
  if (duidAt >= 0 && (labelAt < 0 || duidAt < labelAt)) labelAt = duidAt
  if (labelAt >= 0) applyLabel(text.slice(labelAt), event)
  if (text.length > 65_536) text = text.slice(0, 65_536)
  if (text.indexOf('.') >= 0) {
    IPV4.lastIndex = 0
    for (let m = IPV4.exec(text); m !== null; m = IPV4.exec(text)) addRelatedIp(event, m[0])
  }
  if (text.indexOf(':') >= 0) {
    IPV6_CANDIDATE.lastIndex = 0
    for (let m = IPV6_CANDIDATE.exec(text); m !== null; m = IPV6_CANDIDATE.exec(text)) {
      const c = m[0]
      if (BYTE_STRING.test(c) && !c.includes('::')) continue
      if (isIPv6(c)) addRelatedIp(event, c.toLowerCase())
    }
  }
}
