import { z } from 'zod'

/** The lease-lifecycle vocabulary of `event.action` (docs/ARCHITECTURE.md lists each ID). */
export const LEASE_ACTIONS = [
  'offer', 'allocate', 'renew', 'reuse', 'release', 'decline', 'decline-recovered',
  'reclaim', 'expire', 'revoke', 'nak', 'lease-add', 'lease-update', 'lease-delete', 'lease-wipe',
  'alloc-fail', 'release-fail', 'decline-fail', 'lease-cmd-fail', 'ha-lease-update', 'ha-lease-sync'
] as const
export type LeaseAction = typeof LEASE_ACTIONS[number]

export const PARSE_STATUSES = ['ok', 'partial', 'unmatched'] as const
export type ParseStatus = typeof PARSE_STATUSES[number]

const ip = z.string().describe('IPv4 dotted quad or RFC 5952 IPv6 text, as Kea prints it')

/**
 * One Kea log record as keatrail stores it. ECS names where ECS has a field, `kea.*` for the
 * rest (ECS has no DHCP field set; see ../shared/docs/anchors.md).
 */
export const keaEventSchema = z.object({
  '@timestamp': z.string().describe('Record time, UTC, RFC 3339 with milliseconds (microseconds when the pattern has %Q)'),
  message: z.string().describe('Kea\'s %m: the message ID and its expanded text (continuation lines joined with \\n)'),
  event: z.object({
    id: z.string().describe('Deterministic id: hash of the source identity + byte offset; re-reading yields the same id'),
    original: z.string().describe('The raw record exactly as read (invalid UTF-8 replaced by U+FFFD, see kea.parse.raw_base64)'),
    code: z.string().optional().describe('Kea message ID, e.g. DHCP4_LEASE_ALLOC'),
    action: z.enum(LEASE_ACTIONS).optional().describe('Lease lifecycle action for lease-related message IDs'),
    dataset: z.string().describe('kea.dhcp4, kea.dhcp6 or kea.other'),
    module: z.literal('kea'),
    kind: z.enum(['event', 'alert']),
    category: z.array(z.string()).optional().describe('ECS category; ["network"] for DHCP events'),
    ingested: z.string().optional().describe('When keatrail read the record'),
    timezone: z.string().optional().describe('IANA zone used to resolve a local-time (%D) header')
  }),
  log: z.object({
    level: z.string().optional().describe('Kea severity, lowercase: fatal, error, warn, info, debug'),
    logger: z.string().optional().describe('Kea logger name (%c), e.g. kea-dhcp4.leases'),
    file: z.object({ path: z.string() }).optional(),
    offset: z.number().int().nonnegative().optional().describe('Byte offset of the record in its source'),
    syslog: z.object({
      facility: z.object({ code: z.number().int() }),
      severity: z.object({ code: z.number().int() }),
      appname: z.string().optional(),
      hostname: z.string().optional(),
      procid: z.string().optional(),
      msgid: z.string().optional(),
      structured_data: z.string().optional()
    }).optional().describe('The syslog header, for events received over syslog')
  }),
  process: z.object({
    name: z.string().optional().describe('Root logger, i.e. the daemon: kea-dhcp4, kea-dhcp6, …'),
    pid: z.number().int().optional(),
    thread: z.object({ id: z.union([z.number(), z.string()]).optional() }).optional()
  }).optional(),
  host: z.object({ name: z.string() }).optional(),
  client: z.object({
    ip: ip.optional().describe('The lease address (IA_NA or v4) this record is about'),
    mac: z.string().optional().describe('ECS form: uppercase, hyphen separated')
  }).optional(),
  source: z.object({ ip: ip.optional() }).optional(),
  related: z.object({
    ip: z.array(ip).optional().describe('Every address or prefix base found in the record'),
    hosts: z.array(z.string()).optional().describe('Host names found in the record')
  }).optional(),
  kea: z.object({
    hwaddr: z.string().optional().describe('Hardware address in Kea\'s form (lowercase, colons)'),
    hwtype: z.number().int().optional().describe('Hardware type (1 = Ethernet)'),
    client_id: z.string().optional().describe('DHCPv4 client identifier (option 61) incl. type byte, Kea form'),
    duid: z.string().optional().describe('DHCPv6 DUID incl. DUID type, Kea form'),
    iaid: z.number().int().optional(),
    transaction_id: z.string().optional().describe('Packet transaction id, hex with 0x'),
    subnet_id: z.number().int().optional(),
    subnet: z.string().optional().describe('Subnet prefix, e.g. 192.0.2.0/24'),
    shared_network: z.string().optional(),
    hostname: z.string().optional(),
    lease: z.object({
      address: ip.optional(),
      prefix: ip.optional(),
      prefix_length: z.number().int().optional(),
      lifetime: z.number().int().optional().describe('Valid lifetime in seconds; infinity is 4294967295'),
      probation: z.number().int().optional().describe('Decline probation period in seconds'),
      type: z.enum(['V4', 'IA_NA', 'IA_PD', 'IA_TA']).optional(),
      state: z.string().optional()
    }).optional(),
    lease_owner: z.object({
      duid: z.string().optional(),
      iaid: z.number().int().optional()
    }).optional().describe('The lease\'s recorded owner when it differs from the requesting client'),
    ha: z.object({ server: z.string().optional(), peer: z.string().optional() }).optional(),
    requested_address: ip.optional(),
    source_id: z.string().optional().describe('Hash identifying the source stream (file content fingerprint, …)'),
    parse: z.object({
      status: z.enum(PARSE_STATUSES),
      reason: z.string().optional(),
      raw_base64: z.string().optional().describe('The raw bytes when they were not valid UTF-8'),
      truncated: z.boolean().optional().describe('The record exceeded the size limit and was cut')
    })
  })
})

export type KeaEvent = z.infer<typeof keaEventSchema>
