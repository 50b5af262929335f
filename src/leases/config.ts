import { z } from 'zod'
import { parseAddressOrPrefix } from './address.js'
import { LeaseDomains } from './domains.js'
import { SubnetMap } from './wipes.js'

function isPrefix (s: string): boolean {
  try { parseAddressOrPrefix(s); return s.includes('/') } catch { return false }
}

export const leasesConfigSchema = z.object({
  subnets: z.array(z.object({
    server: z.string().describe('host.name of the Kea server the subnet belongs to, as its logs are collected'),
    id: z.number().int().min(1).describe('The subnet\'s subnet-id in that server\'s configuration'),
    prefix: z.string().refine(isPrefix, { message: 'an IPv4 or IPv6 prefix such as 192.0.2.0/24' }).describe('The subnet (a delegated-prefix pool outside it: another entry with the same id)')
  }).strict()).max(100_000).default([])
    .describe('Kea\'s subnets by server. A lease4-wipe/lease6-wipe of a subnet ends the leases whose address lies in it even where the logs do not name their subnet (DHCP allocations at INFO); without an entry they are marked gap at the wipe'),
  domains: z.array(z.object({
    name: z.string().min(1).max(253).refine((n) => n !== '*', { message: '"*" means every server in lease answers' }).describe('The domain\'s name: lease answers show it as their scope, and --scope / ?scope= take it (or one of its servers)'),
    servers: z.array(z.string().min(1).max(253)).min(2).max(64).describe('host.name of each Kea server in it, as its logs are collected')
  }).strict()).max(10_000).default([])
    .superRefine((domains, ctx) => {
      const seen = new Map<string, string>()
      const names = new Set<string>()
      for (const [i, d] of domains.entries()) {
        if (names.has(d.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `lease domain ${d.name} is configured twice` })
        names.add(d.name)
        for (const s of new Set(d.servers)) {
          const other = seen.get(s)
          if (other !== undefined) ctx.addIssue({ code: 'custom', path: [i, 'servers'], message: `server ${s} is in lease domains ${other} and ${d.name}: a server's leases have one history` })
          seen.set(s, d.name)
        }
        if (new Set(d.servers).size < 2) ctx.addIssue({ code: 'custom', path: [i, 'servers'], message: `lease domain ${d.name} needs two servers or more` })
      }
      for (const [i, d] of domains.entries()) {
        const owner = seen.get(d.name)
        if (owner !== undefined && owner !== d.name) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `lease domain ${d.name} is named like a server of lease domain ${owner}` })
      }
    })
    .describe('Lease domains: servers that share one view of the leases (an HA pair\'s peers, servers on one SQL lease database). Their leases have one history, built from all their logs in time order: a lease allocated by one and renewed by the other is one interval, and "who held X at T" has one answer. Without one a server\'s leases are its own. A change applies to what is derived from then on, not to history derived before')
}).strict()

export type LeasesConfig = z.output<typeof leasesConfigSchema>

/** What the stores take of `leases`: the subnets (by their servers' scopes) and the domains. */
export function leaseSetup (cfg: LeasesConfig): [SubnetMap, LeaseDomains] {
  const domains = new LeaseDomains(cfg.domains)
  return [new SubnetMap(cfg.subnets, domains), domains]
}
