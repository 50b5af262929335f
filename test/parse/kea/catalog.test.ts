import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { KeaEvent } from '../../../src/parse/event.js'
import { interpretMessage } from '../../../src/parse/kea/message.js'
import { builtinRules, type MessageRule, type Role } from '../../../src/parse/kea/rules.js'
import { escapeRegex } from '../../../src/parse/time/strftime.js'
import { CATALOG_DIR, hasCatalog, skipWithout } from '../../helpers/fixtures.js'

// Coverage against Kea's own message catalogs (../shared/kea/catalog, derived from the .mes
// files). Only these checks may skip when ../shared is absent (a user's clone), and not with CI=true.

const VERSIONS = ['2.2.0', '2.4.0', '2.6.0', '3.0.0', '3.2.0', 'head']

/** Lease-lifecycle IDs of kea-logging.md §3.3: each must have a rule with an event.action. */
const LIFECYCLE = new RegExp('^(' + [
  'DHCP4_LEASE_(ADVERT|OFFER|ALLOC|REUSE)',
  'DHCP4_RELEASE(_\\w+)?',
  'DHCP4_DECLINE_(LEASE|LEASE_NOT_FOUND|LEASE_MISMATCH|FAIL)',
  'DHCP4_SERVER_INITIATED_DECLINE(_\\w+)?',
  'DHCP4_PACKET_NAK_\\d{4}',
  'DHCP6_(PD_)?LEASE_(ADVERT|ALLOC|RENEW|REUSE)(_FAIL)?',
  'DHCP6_RELEASE_(NA|PD)(_\\w+)?',
  'DHCP6_DECLINE_(LEASE|FAIL(_\\w+)?)',
  'ALLOC_ENGINE_V[46]_(LEASE_RECLAIM|DECLINED_RECOVERED|REQUEST_EXTEND_LEASE|EXTEND_LEASE|ALLOC_FAIL(_\\w+)?|REVOKED_\\w+)',
  'ALLOC_ENGINE_LEASE_RECLAIMED',
  'LEASE_CMDS_(ADD|UPDATE|DEL|WIPE)[46](_FAILED|_CONFLICT)?',
  'LEASE_CMDS_BULK_APPLY6(_FAILED)?',
  'HA_LEASE_UPDATE_(FAILED|CONFLICT|COMMUNICATIONS_FAILED|CREATE_UPDATE_FAILED_ON_PEER|DELETE_FAILED_ON_PEER)',
  'HA_LEASES_SYNC_(LEASE_PAGE_RECEIVED|APPLIED_LEASES)',
  'HA_LEASE_SYNC_(FAILED|STALE_LEASE[46]_SKIP)',
  'HA_LEASE[46]_EXPIRE_RECLAMATION_SKIP'
].join('|') + ')$')

interface CatalogEntry { id: string, template: string }

function loadCatalog (version: string): CatalogEntry[] {
  return JSON.parse(readFileSync(join(CATALOG_DIR, `messages-${version}.json`), 'utf8')) as CatalogEntry[]
}

/** Which of our forms a catalog template is, and so the role of each %N. */
function align (rule: MessageRule, template: string): Map<number, Role> | undefined {
  for (const form of rule.forms) {
    const pieces = form.form.split(/\{[a-z_0-9]+\}/)
    const source = '^' + pieces.map(escapeRegex).join('%(\\d)') + '$'
    const m = new RegExp(source, 's').exec(template)
    if (m === null) continue
    const roles = new Map<number, Role>()
    form.roles.forEach((role, i) => roles.set(Number(m[i + 1]), role))
    return roles
  }
  return undefined
}

const V4 = { hwaddr: '02:00:00:00:00:0a', cid: '01:02:00:00:00:00:0a', tid: '0x7f74d74a', address: '192.0.2.77' }
const V6 = { duid: '00:03:00:01:02:00:00:00:06:0a', tid: '0x1e2e5f', address: '2001:db8:1::77' }

function labelFor (family: 4 | 6, version: string, withTid: boolean): string {
  if (family === 4) return `[hwtype=1 ${V4.hwaddr}], cid=[${V4.cid}]${withTid ? `, tid=${V4.tid}` : ''}`
  const newForm = !['2.2.0', '2.4.0'].includes(version)
  return `duid=[${V6.duid}]${newForm ? ', [no hwaddr info]' : ''}${withTid ? `, tid=${V6.tid}` : ''}`
}

function sample (role: Role, family: 4 | 6, version: string, id: string): string {
  const v6 = family === 6
  switch (role) {
    case 'label': return labelFor(family, version, !id.includes('RECLAIM'))
    case 'address': return v6 ? V6.address : V4.address
    case 'requested': return '192.0.2.99'
    case 'ciaddr': return '0.0.0.0'
    case 'source': return '192.0.2.250'
    case 'prefix': return '2001:db8:8000:100::'
    case 'prefix_length': return '56'
    case 'lifetime': return '3600'
    case 'probation': return '15'
    case 'iaid': return '42'
    case 'owner_iaid': return '7'
    case 'owner_duid': return '00:03:00:01:aa:bb:cc:dd:ee:ff'
    case 'subnet_id': return '12'
    case 'subnet': return v6 ? '2001:db8:1::/64' : '192.0.2.0/24'
    case 'shared_network': return 'campus'
    case 'hostname': return 'host-a.example.org'
    case 'fqdn_option': return "type=81 (CLIENT_FQDN), flags: (N=0, E=1, O=0, S=1), domain-name='host-a.example.org' (full)"
    case 'lease_type': return v6 ? 'IA_NA' : 'V4'
    case 'state': return 'declined'
    case 'server': return 'server1'
    case 'peer': return 'server2 (http://127.0.0.1:8001/)'
    case 'count': return '3'
    case 'params': return v6
      ? `{ "duid": "${V6.duid}", "iaid": 42, "ip-address": "${V6.address}", "subnet-id": 12, "valid-lft": 3600 }`
      : `{ "hw-address": "${V4.hwaddr}", "ip-address": "${V4.address}", "subnet-id": 12, "valid-lft": 3600 }`
    case 'lease_dump': return `Address:       ${v6 ? V6.address : V4.address}\nValid life:    3600\n`
    case 'text': return 'some reason, with words'
  }
}

/** The field each role must land in, read back from the event. */
function extracted (role: Role, e: KeaEvent, family: 4 | 6): unknown {
  switch (role) {
    case 'label': return family === 4
      ? [e.kea.hwaddr, e.client?.mac, e.kea.client_id]
      : [e.kea.duid]
    case 'address': return [e.kea.lease?.address, e.client?.ip]
    case 'requested': return e.kea.requested_address
    case 'prefix': return e.kea.lease?.prefix
    case 'prefix_length': return e.kea.lease?.prefix_length
    case 'lifetime': return e.kea.lease?.lifetime
    case 'probation': return e.kea.lease?.probation
    case 'iaid': return e.kea.iaid
    case 'owner_iaid': return e.kea.lease_owner?.iaid
    case 'owner_duid': return e.kea.lease_owner?.duid
    case 'subnet_id': return e.kea.subnet_id
    case 'subnet': return e.kea.subnet
    case 'shared_network': return e.kea.shared_network
    case 'hostname': return e.kea.hostname
    case 'lease_type': return e.kea.lease?.type
    case 'state': return e.kea.lease?.state
    case 'server': return e.kea.ha?.server
    case 'peer': return e.kea.ha?.peer
    case 'source': return e.source?.ip
    case 'params': return family === 4 ? [e.kea.lease?.address, e.kea.hwaddr, e.kea.subnet_id] : [e.kea.lease?.address, e.kea.duid, e.kea.iaid]
    default: return undefined
  }
}

function expected (role: Role, family: 4 | 6, version: string, id: string): unknown {
  switch (role) {
    case 'label': return family === 4 ? [V4.hwaddr, '02-00-00-00-00-0A', V4.cid] : [V6.duid]
    case 'address': { const a = family === 6 ? V6.address : V4.address; return [a, a] }
    case 'prefix_length': case 'lifetime': case 'probation': case 'iaid': case 'owner_iaid': case 'subnet_id':
      return Number(sample(role, family, version, id))
    case 'params': return family === 4 ? [V4.address, V4.hwaddr, 12] : [V6.address, V6.duid, 42]
    case 'ciaddr': case 'count': case 'text': case 'lease_dump': case 'fqdn_option': return undefined
    default: return sample(role, family, version, id)
  }
}

function blankEvent (): KeaEvent {
  return {
    '@timestamp': '2026-01-01T00:00:00.000Z',
    message: '',
    event: { id: 'x', original: '', dataset: 'kea.other', module: 'kea', kind: 'event' },
    log: {},
    kea: { parse: { status: 'ok' } }
  }
}

describe.skipIf(skipWithout(CATALOG_DIR))(`Kea message catalog coverage (../shared/kea/catalog)${hasCatalog ? '' : ` (${CATALOG_DIR} is absent: skipped locally, fails with CI=true)`}`, () => {
  it('has the shared catalogs', () => {
    expect(hasCatalog, `${CATALOG_DIR} is absent (set KEATRAIL_SHARED_DIR, or check out ../shared)`).toBe(true)
  })
  const rules = builtinRules()
  for (const version of VERSIONS) {
    describe(`Kea ${version}`, () => {
      const catalog = hasCatalog ? loadCatalog(version) : []
      const lifecycle = catalog.filter((c) => LIFECYCLE.test(c.id))

      it('has a rule with an event.action for every lease-lifecycle message ID', () => {
        expect(lifecycle.length).toBeGreaterThan(60)
        const missing = lifecycle.filter((c) => rules.get(c.id)?.action === undefined).map((c) => c.id)
        expect(missing).toEqual([])
      })

      it('parses every rendered lease-lifecycle template into the right fields', () => {
        const failures: string[] = []
        for (const entry of lifecycle) {
          const rule = rules.get(entry.id)
          if (rule === undefined) continue
          const roles = align(rule, entry.template)
          if (roles === undefined) {
            failures.push(`${entry.id}: no form fits ${JSON.stringify(entry.template)}`)
            continue
          }
          const family: 4 | 6 = rule.family ?? 4
          const text = entry.template.replace(/%(\d)/g, (_, n: string) => sample(roles.get(Number(n)) ?? 'text', family, version, entry.id))
          const event = blankEvent()
          interpretMessage(`${entry.id} ${text}`, event, rules)
          if (event.event.action !== rule.action) failures.push(`${entry.id}: action ${event.event.action} ≠ ${rule.action}`)
          for (const role of new Set(roles.values())) {
            const want = expected(role, family, version, entry.id)
            if (want === undefined) continue
            const got = extracted(role, event, family)
            if (JSON.stringify(got) !== JSON.stringify(want)) {
              failures.push(`${entry.id} {${role}}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)} in ${JSON.stringify(text)}`)
            }
          }
        }
        expect(failures).toEqual([])
      })
    })
  }
})
