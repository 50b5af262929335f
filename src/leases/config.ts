import { z } from 'zod'
import { parseAddressOrPrefix } from './address.js'

function isPrefix (s: string): boolean {
  try { parseAddressOrPrefix(s); return s.includes('/') } catch { return false }
}

export const leasesConfigSchema = z.object({
  subnets: z.array(z.object({
    server: z.string().describe('host.name of the Kea server the subnet belongs to, as its logs are collected'),
    id: z.number().int().min(1).describe('The subnet\'s subnet-id in that server\'s configuration'),
    prefix: z.string().refine(isPrefix, { message: 'an IPv4 or IPv6 prefix such as 192.0.2.0/24' }).describe('The subnet (a delegated-prefix pool outside it: another entry with the same id)')
  }).strict()).max(100_000).default([])
    .describe('Kea\'s subnets by server. A lease4-wipe/lease6-wipe of a subnet ends the leases whose address lies in it even where the logs do not name their subnet (DHCP allocations at INFO); without an entry they are marked gap at the wipe')
}).strict()

export type LeasesConfig = z.output<typeof leasesConfigSchema>
