import type { LeasesConfig } from './config.js'

/**
 * Lease domains (`leases.domains`): servers that share one view of the leases — an HA pair's
 * peers, servers on one SQL lease database. Lease history keeps a domain's leases under the
 * domain's name (the observations' scope), so that its servers' lines fold into one history:
 * Kea's hot-standby standby logs no lease details for the updates it receives, and serves
 * (renewing the primary's leases) only while the primary is down; one history per server split
 * such a lease into fragments, and "who held X at T" answered twice or from a stale view.
 */
export class LeaseDomains {
  private readonly byServer = new Map<string, string>()
  private readonly members = new Map<string, string[]>()

  constructor (domains: LeasesConfig['domains'] = []) {
    for (const d of domains) {
      this.members.set(d.name, [...d.servers])
      for (const s of d.servers) this.byServer.set(s, d.name)
    }
  }

  get size (): number { return this.members.size }

  /** The domains as one canonical text (sorted): what a store records to notice another configuration later. */
  signature (): string {
    return JSON.stringify([...this.members].map(([name, servers]) => ({ name, servers: [...servers].sort() })).sort((a, b) => a.name < b.name ? -1 : 1))
  }

  /** The scope lease history keeps a server's leases under: its domain's name, or the server's own. */
  scopeOf (server: string): string {
    return this.byServer.get(server) ?? server
  }

  /** The host.names whose events a lease-history scope holds: a domain's servers, or the server itself. */
  hostsOf (scope: string): readonly string[] {
    return this.members.get(scope) ?? [scope]
  }
}

/** Per-server time spans as per-scope ones: a lease domain's servers' spans merged into the domain's. */
export function byDomain<S extends { scope: string, f: number, l: number }> (spans: readonly S[], domains: LeaseDomains): S[] {
  const out = new Map<string, S>()
  for (const s of spans) {
    const scope = domains.scopeOf(s.scope)
    const had = out.get(scope)
    if (had === undefined) out.set(scope, { ...s, scope })
    else { had.f = Math.min(had.f, s.f); had.l = Math.max(had.l, s.l) }
  }
  return [...out.values()]
}

/** No domains: every server's leases are its own. */
export const NO_DOMAINS = new LeaseDomains()
