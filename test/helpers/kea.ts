import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

/** The Kea versions tested for real: the host's own Debian 12 package, and Debian's newer ones in chroots. */
export const KEA_VERSIONS = ['2.2', '2.6', '3.0'] as const
export type KeaVersion = typeof KEA_VERSIONS[number]

/** Where a Kea version runs: the host's binaries, or a chroot built by scripts/kea-chroot.sh. */
export interface KeaRuntime {
  version: KeaVersion
  /** The chroot's root; undefined for the host's own Kea. */
  root: string | undefined
  /** Full version as `kea-dhcp4 -v` prints it (2.2.0, 2.6.3, 3.0.4). */
  full: string
  /** Where the hook libraries are (inside the chroot for a chroot). */
  hooksDir: string
}

/** The host's own Kea (Debian 12: 2.2), without asking it its version. */
export const HOST_KEA: KeaRuntime = { version: '2.2', root: undefined, full: '2.2', hooksDir: '/usr/lib/x86_64-linux-gnu/kea/hooks' }

const HOOK_DIRS = ['/usr/lib/x86_64-linux-gnu/kea/hooks', '/usr/lib/kea/hooks']
const CHROOTS = process.env.KEATRAIL_KEA_CHROOTS ?? '/var/tmp/keatrail-kea'

/** Why real-Kea tests cannot run here, or '' when they can (root, kea-dhcp4, perfdhcp, ip). */
export function keaUnavailable (): string {
  if (process.getuid?.() !== 0) return 'needs root for network namespaces'
  for (const bin of ['kea-dhcp4', 'kea-dhcp6', 'perfdhcp', 'ip']) {
    try { execFileSync('which', [bin], { stdio: 'ignore' }) } catch { return `${bin} is not installed (apt-get install kea-dhcp4-server kea-dhcp6-server kea-admin iproute2)` }
  }
  return ''
}

/**
 * The runtime of one Kea version, or why it cannot run here. 2.2 is the host's package; 2.6 and
 * 3.0 live in chroots that `scripts/kea-chroot.sh VERSION` builds (CI builds them first: a test
 * does not wait a minute for debootstrap).
 */
export function keaRuntime (version: KeaVersion): KeaRuntime | string {
  if (version === '2.2') {
    const why = keaUnavailable()
    if (why !== '') return why
    const full = execFileSync('kea-dhcp4', ['-v'], { encoding: 'utf8' }).trim()
    if (!full.startsWith('2.2.')) return `the host's kea-dhcp4 is ${full}, not 2.2`
    return { version, root: undefined, full, hooksDir: HOOK_DIRS.find((d) => existsSync(d)) ?? HOOK_DIRS[0] as string }
  }
  if (process.getuid?.() !== 0) return 'needs root for network namespaces and chroot'
  const root = join(CHROOTS, `kea-${version}`)
  const marker = join(root, '.keatrail-kea-version')
  if (!existsSync(marker)) return `no Kea ${version} chroot in ${CHROOTS} (build it: scripts/kea-chroot.sh ${version})`
  const full = readFileSync(marker, 'utf8').trim()
  return { version, root, full, hooksDir: HOOK_DIRS.find((d) => existsSync(join(root, d))) ?? HOOK_DIRS[0] as string }
}

/** A hook library's path as the daemon sees it. */
export function hookLibrary (rt: KeaRuntime, name: string): string {
  return join(rt.hooksDir, name)
}

/**
 * The command that runs a Kea binary of this runtime, in network namespace `netns` (or the
 * host's): for a chroot, in a private mount namespace where `dirs` (configs, logs, lease files,
 * sockets) are bound at the same paths inside the chroot (over a private tmpfs when under /tmp,
 * so nothing is left in the chroot), under a clean environment plus `env`. Every step execs, so
 * the pid is the daemon's own and SIGTERM reaches it.
 */
export function keaCommand (rt: KeaRuntime, bin: string, args: string[], opts: { netns?: string, dirs?: string[], env?: Record<string, string> } = {}): { cmd: string, args: string[], env: NodeJS.ProcessEnv } {
  const env = opts.env ?? {}
  const ns = opts.netns === undefined ? [] : ['ip', 'netns', 'exec', opts.netns]
  if (rt.root === undefined) {
    const all = [...ns, bin, ...args]
    return { cmd: all[0] as string, args: all.slice(1), env: { ...process.env, ...env } }
  }
  const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`
  const r = rt.root
  const script = ['set -e', `mount -t proc proc ${q(join(r, 'proc'))}`]
  if ((opts.dirs ?? []).some((d) => d.startsWith('/tmp/'))) script.push(`mount -t tmpfs tmpfs ${q(join(r, 'tmp'))}`)
  for (const d of opts.dirs ?? []) script.push(`mkdir -p ${q(join(r, d))}`, `mount --bind ${q(d)} ${q(join(r, d))}`)
  const vars = Object.entries({ PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', ...env }).map(([k, v]) => q(`${k}=${v}`))
  script.push(`exec chroot ${q(r)} env -i ${vars.join(' ')} ${[bin, ...args].map(q).join(' ')}`)
  const all = [...ns, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', script.join('\n')]
  return { cmd: all[0] as string, args: all.slice(1), env: { PATH: process.env.PATH } }
}

/**
 * The directories a daemon's configuration names (log outputs, lease files, control sockets),
 * and the environment that lets Kea ≥ 2.6 use them: 2.6.3 and 3.0 refuse log paths outside
 * KEA_LOG_FILE_DIR, lease files outside KEA_DHCP_DATA_DIR and sockets outside
 * KEA_CONTROL_SOCKET_DIR (one directory each: the first one named wins).
 */
export function keaPaths (config: unknown, lockDir: string): { dirs: string[], env: Record<string, string> } {
  const found: Record<'log' | 'data' | 'socket', string[]> = { log: [], data: [], socket: [] }
  const walk = (v: unknown, key: string): void => {
    if (Array.isArray(v)) { for (const x of v) walk(x, key); return }
    if (v !== null && typeof v === 'object') { for (const [k, x] of Object.entries(v)) walk(x, k); return }
    if (typeof v !== 'string' || !v.startsWith('/')) return
    if (key === 'output') found.log.push(dirname(v))
    else if (key === 'name' && v.endsWith('.csv')) found.data.push(dirname(v))
    else if (key === 'socket-name') found.socket.push(dirname(v))
  }
  walk(config, '')
  const env: Record<string, string> = { KEA_PIDFILE_DIR: lockDir, KEA_LOCKFILE_DIR: lockDir }
  if (found.log[0] !== undefined) env.KEA_LOG_FILE_DIR = found.log[0]
  if (found.data[0] !== undefined) env.KEA_DHCP_DATA_DIR = found.data[0]
  if (found.socket[0] !== undefined) env.KEA_CONTROL_SOCKET_DIR = found.socket[0]
  return { dirs: [...new Set([lockDir, ...found.log, ...found.data, ...found.socket])], env }
}

/**
 * A private test network: Kea serves in namespace `<prefix>-srv` on 192.0.2.1, clients run in
 * `<prefix>-cli`, joined by a veth pair. Nothing outside the namespaces is touched.
 */
export class KeaLab {
  readonly srv: string
  readonly cli: string
  readonly srvIf: string
  readonly cliIf: string
  private kea: ChildProcess | undefined
  private readonly daemons: Array<{ family: 4 | 6, proc: ChildProcess }> = []

  /** `rt`: which Kea serves (default the host's own). */
  constructor (readonly prefix: string, readonly dir: string, readonly rt: KeaRuntime = HOST_KEA) {
    this.srv = `${prefix}-srv`
    this.cli = `${prefix}-cli`
    this.srvIf = `${prefix}s0`
    this.cliIf = `${prefix}c0`
  }

  up (): void {
    this.down()
    const ip = (...args: string[]): void => { execFileSync('ip', args, { stdio: 'inherit' }) }
    ip('netns', 'add', this.srv)
    ip('netns', 'add', this.cli)
    ip('link', 'add', this.srvIf, 'netns', this.srv, 'type', 'veth', 'peer', 'name', this.cliIf, 'netns', this.cli)
    ip('-n', this.srv, 'addr', 'add', '192.0.2.1/24', 'dev', this.srvIf)
    ip('-n', this.cli, 'addr', 'add', '192.0.2.250/24', 'dev', this.cliIf)
    ip('-n', this.srv, 'addr', 'add', '2001:db8:1::1/64', 'dev', this.srvIf, 'nodad')
    for (const [ns, dev] of [[this.srv, this.srvIf], [this.cli, this.cliIf]] as const) {
      ip('-n', ns, 'link', 'set', 'lo', 'up')
      ip('-n', ns, 'link', 'set', dev, 'up')
    }
    mkdirSync(join(this.dir, 'lock'), { recursive: true })
  }

  /**
   * Starts kea-dhcp4 with this Dhcp4 configuration body; resolves once it is up. With `devLog`,
   * Kea runs in a private mount namespace whose /dev is a tmpfs holding null/zero/random/urandom
   * and a `log` bound to `devLog` (a syslog daemon's socket): Kea's syslog output goes there
   * and the host's /dev is untouched.
   */
  async startDhcp4 (dhcp4: Record<string, unknown>, devLog?: string): Promise<void> {
    const config = join(this.dir, 'kea-dhcp4.json')
    writeFileSync(config, JSON.stringify({
      Dhcp4: {
        'interfaces-config': { interfaces: [this.srvIf], 'dhcp-socket-type': 'raw' },
        'lease-database': { type: 'memfile', persist: true, name: join(this.dir, 'leases4.csv'), 'lfc-interval': 0 },
        ...dhcp4
      }
    }))
    const keaCmd = ['ip', 'netns', 'exec', this.srv, 'kea-dhcp4', '-c', config]
    const script = [
      'set -e',
      `d=${JSON.stringify(join(this.dir, 'dev'))}`,
      'mkdir -p "$d"',
      'mount -t tmpfs tmpfs "$d"',
      'for n in null zero random urandom; do touch "$d/$n"; mount --bind "/dev/$n" "$d/$n"; done',
      `touch "$d/log"; mount --bind ${JSON.stringify(devLog ?? '')} "$d/log"`,
      'mount --rbind "$d" /dev',
      `exec ${keaCmd.map((a) => JSON.stringify(a)).join(' ')}`
    ].join('\n')
    const [cmd, args] = devLog === undefined ? [keaCmd[0] as string, keaCmd.slice(1)] : ['unshare', ['-m', '--propagation', 'private', 'sh', '-c', script]]
    this.kea = spawn(cmd, args, {
      env: { ...process.env, KEA_PIDFILE_DIR: join(this.dir, 'lock'), KEA_LOCKFILE_DIR: join(this.dir, 'lock') },
      stdio: ['ignore', 'ignore', 'inherit']
    })
    await new Promise((resolve) => setTimeout(resolve, 2000))
    if (this.kea.exitCode !== null) throw new Error(`kea-dhcp4 exited with ${this.kea.exitCode}`)
  }

  /**
   * Starts kea-dhcp4 or kea-dhcp6 with this configuration body (lease file in the lab dir,
   * TZ=UTC so its %D headers are UTC); several may run at once. Resolves once it is up.
   */
  async startKea (family: 4 | 6, body: Record<string, unknown>): Promise<void> {
    const config = join(this.dir, `kea-dhcp${family}.json`)
    const iface = family === 4 ? { interfaces: [this.srvIf], 'dhcp-socket-type': 'raw' } : { interfaces: [this.srvIf] }
    writeFileSync(config, JSON.stringify({
      [`Dhcp${family}`]: {
        'interfaces-config': iface,
        'lease-database': { type: 'memfile', persist: true, name: this.leaseFile(family), 'lfc-interval': 0 },
        ...body
      }
    }))
    const written = JSON.parse(readFileSync(config, 'utf8')) as unknown
    const paths = keaPaths(written, join(this.dir, 'lock'))
    const run = keaCommand(this.rt, `kea-dhcp${family}`, ['-c', config], { netns: this.srv, dirs: [this.dir, ...paths.dirs], env: { TZ: 'UTC', ...paths.env } })
    const p = spawn(run.cmd, run.args, { env: run.env, stdio: ['ignore', 'ignore', 'inherit'] })
    this.daemons.push({ family, proc: p })
    await new Promise((resolve) => setTimeout(resolve, 2500))
    if (p.exitCode !== null) throw new Error(`kea-dhcp${family} exited with ${p.exitCode}`)
  }

  leaseFile (family: 4 | 6): string {
    return join(this.dir, `leases${family}.csv`)
  }

  /** Stops the daemons started with startKea, or those of one family (SIGTERM: Kea flushes its lease file). */
  async stopDaemons (family?: 4 | 6): Promise<void> {
    await Promise.all(this.daemons.filter((d) => family === undefined || d.family === family).map(async ({ proc: k }) => {
      if (k.exitCode !== null || k.signalCode !== null) return
      await new Promise<void>((resolve) => { k.on('exit', () => resolve()); k.kill('SIGTERM') })
    }))
  }

  /** perfdhcp from the client namespace; resolves when it finishes (it is bounded by -p). */
  async perfdhcp (args: string[], family: 4 | 6 = 4): Promise<void> {
    const target = family === 4 ? ['192.0.2.1'] : []
    await new Promise<void>((resolve, reject) => {
      const run = keaCommand(this.rt, 'perfdhcp', [`-${family}`, '-l', this.cliIf, ...args, ...target], { netns: this.cli })
      const p = spawn(run.cmd, run.args, { env: run.env, stdio: 'ignore' })
      p.on('exit', () => resolve())
      p.on('error', reject)
    })
  }

  async stopKea (): Promise<void> {
    const k = this.kea
    if (k === undefined || k.exitCode !== null) return
    await new Promise<void>((resolve) => { k.on('exit', () => resolve()); k.kill('SIGTERM') })
  }

  down (): void {
    if (this.kea !== undefined && this.kea.exitCode === null) this.kea.kill('SIGKILL')
    for (const { proc } of this.daemons) if (proc.exitCode === null) proc.kill('SIGKILL')
    for (const ns of [this.srv, this.cli]) {
      if (existsSync(`/run/netns/${ns}`)) {
        try { execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean).forEach((pid) => { try { process.kill(Number(pid), 'SIGKILL') } catch { /* gone */ } }) } catch { /* none */ }
        try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch { /* gone */ }
      }
    }
  }
}
