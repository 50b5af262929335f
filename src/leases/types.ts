import type { LeaseDomains } from './domains.js'
import type { SubnetMap } from './wipes.js'

/** Kinds of lease keatrail tracks: DHCPv4, DHCPv6 addresses (IA_NA), DHCPv6 prefixes (IA_PD). */
export type LeaseType = 'V4' | 'IA_NA' | 'IA_PD'

// Appended only: the SQLite store writes an end reason as its index here (lease-codec.ts).
export const END_REASONS = ['release', 'decline', 'reclaim', 'expiry-by-lifetime', 'superseded', 'deleted', 'still-active', 'wiped'] as const
export type EndReason = typeof END_REASONS[number]

/** observed: start and end seen in logs; inferred: end from the lifetime; gap: collection had a gap inside, or a wipe of its server may have ended it (its subnet unknown). */
export type Certainty = 'observed' | 'inferred' | 'gap'

/** Who a lease was for. Every identifier Kea logged is kept; any of them finds the interval. */
export interface LeaseClient {
  /** Kea form: lowercase, colons. */
  hwaddr?: string
  client_id?: string
  duid?: string
  /** The link-layer address inside a DUID-LLT/LL. */
  duid_ll?: string
  iaid?: number
  hostname?: string
}

/** Which lease: one address or delegated prefix of one Kea server. */
export interface LeaseKey {
  /** scope|type|lease. */
  key: string
  /** host.name of the server ('' when unknown). */
  scope: string
  type: LeaseType
  /** The address (V4, IA_NA) or prefix with length (IA_PD), canonical text. */
  lease: string
  /** Fixed-width hex bounds of the address or prefix (src/leases/address.ts). */
  lo: string
  hi: string
}

/**
 * One lifecycle event reduced to what derivation needs. Stored (idempotently, by event id) so
 * that intervals can be recomputed when events arrive late or again.
 */
export interface LeaseObservation extends LeaseClient, LeaseKey {
  event_id: string
  /** Epoch ms. */
  ts: number
  /** Orders observations with the same ts: the source, then the byte offset. */
  seq: string
  action: string
  /** Seconds; absent when the message has none (v6 renew). */
  lifetime?: number
  subnet_id?: number
  /** On a wipe: whether the configured subnets put this key's address in the wiped subnet (absent: not known). */
  in_subnet?: boolean
  /** host.name of the server that logged it, when its scope is that server's lease domain. */
  server?: string
}

export interface LeaseInterval extends LeaseClient, LeaseKey {
  /** Deterministic: hash of the key and the first evidence event. */
  id: string
  subnet_id?: number
  /** Epoch ms; null when collection began after the lease started (only its end was seen). */
  start: number | null
  /** Epoch ms; null when the lifetime is unknown and no end was seen. */
  end: number | null
  end_reason: EndReason
  certainty: Certainty
  /** Last lifetime Kea granted (s). */
  lifetime?: number
  /** Allocations, renewals and reuses merged into this interval. */
  extensions: number
  /** Event ids: the start, the latest extensions, the end. */
  evidence: string[]
  /** Where the interval came from: logs, or Kea's own lease state (memfile CSV, lease*-get-all). */
  origin: 'log' | 'kea-state'
  /** In a lease domain: the servers whose lines it holds (host.name, sorted). */
  servers?: string[]
}

/** One holder in an answer, as the CLI and API print it. */
export interface Holder extends LeaseClient {
  lease: string
  type: LeaseType
  scope: string
  mac?: string
  start: string | null
  end: string | null
  end_reason: EndReason
  certainty: Certainty
  evidence: string[]
  origin: 'log' | 'kea-state'
  /** In a lease domain: the servers whose lines the interval holds. */
  servers?: string[]
}

/** A time range in which keatrail knows it lost input (UDP datagrams dropped…): no answer inside is certain. */
export interface CollectionGap {
  /** host.name, or '*' when the lost input's server is unknown. */
  scope: string
  /** Epoch ms. */
  from: number
  to: number
  reason: string
}

export interface HolderAnswer {
  address: string
  time: string
  holders: Holder[]
  /** When nobody held it: the nearest intervals before and after, as evidence for "nobody". */
  before?: Holder
  after?: Holder
  /** False when the time lies outside what keatrail collected for this scope, or inside a known gap (then the answer says nothing). */
  covered: boolean
  /** Known collection gaps containing the time. */
  gaps?: Array<{ from: string, to: string, reason: string }>
  coverage?: { from: string, to: string }
  /** More than MAX_INTERVALS holders: the first of them only. */
  truncated?: boolean
}

/**
 * Intervals one lease answer holds (history, holders at a time), in every store: the first ones
 * in time order, then `truncated`. 1,000: years of daily renewals of one client are a few
 * hundred intervals; 100,000 forged allocations for one MAC made a 30 MB answer that held the
 * main thread 10-12 s (ingestion dropped two datagrams in three).
 */
export const MAX_INTERVALS = 1000

export interface HistoryQuery {
  address?: string
  prefix?: string
  mac?: string
  client_id?: string
  duid?: string
  hostname?: string
  /** Epoch ms, inclusive / exclusive. */
  from?: number
  to?: number
  scope?: string
  /** At most this many intervals, the first in time order (default: the store's own bound). */
  limit?: number
}

/** The lease-history half of a store: both stores implement it with the same derivation code. */
export interface LeaseStore {
  /** Keys whose stored rows could not be read, rebuilt from the stored events (SQLite; each logged by the service). */
  readonly repaired?: number
  /** Lease wipes not applied because the store keeps MAX_WIPES already (each batch logged by the service; its time is a collection gap). */
  readonly wipesIgnored?: number
  /** Called for the wipes of one server a batch could not apply (set by the composition root, which logs them). */
  onWipesIgnored?: (scope: string, n: number, from: number, to: number) => void
  /** The configured subnets (`leases.subnets`), set by the composition root: which leases of unknown subnet a wipe ends. Set only (reads give undefined). */
  subnets?: SubnetMap
  /** The lease domains (`leases.domains`) the store keeps histories by: a server's name in a question means its domain. */
  domains?: LeaseDomains
  /** Intervals overlapping `time` whose range contains the address (IA_PD prefixes too): at most MAX_INTERVALS + 1. */
  intervalsAt: (range: { lo: string, hi: string }, time: number, scope?: string) => Promise<LeaseInterval[]>
  /** The last interval ending at or before `time` and the first starting after it. */
  neighbours: (range: { lo: string, hi: string }, time: number, scope?: string) => Promise<{ before?: LeaseInterval, after?: LeaseInterval }>
  /** Intervals matching the query, in time order. */
  intervals: (q: HistoryQuery) => Promise<LeaseInterval[]>
  /** intervals() of each query, in one read where the store can (SQLite: one reader worker round trip). */
  intervalsMany?: (qs: readonly HistoryQuery[]) => Promise<LeaseInterval[][]>
  /** Time span of stored events per scope (host.name; '' when unknown). */
  coverage: (scope?: string) => Promise<{ from: number, to: number } | undefined>
  /** How much lease history is stored. */
  stats: () => Promise<{ intervals: number, observations: number }>
  /** Records lost input. */
  recordGap: (gap: CollectionGap) => Promise<void>
  /** Gaps of this scope (or of all scopes) overlapping [from, to). */
  gapsIn: (scope: string, from: number, to: number) => Promise<CollectionGap[]>
  /** Scopes (host.name, '' when unknown) that events were collected for. */
  scopes: () => Promise<string[]>
  /** Stores intervals built from Kea's own lease state (memfile CSV…); idempotent. */
  writeKeaState: (intervals: LeaseInterval[]) => Promise<number>
}
