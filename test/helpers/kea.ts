import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** Why real-Kea tests cannot run here, or '' when they can (root, kea-dhcp4, perfdhcp, ip). */
export function keaUnavailable (): string {
  if (process.getuid?.() !== 0) return 'needs root for network namespaces'
  for (const bin of ['kea-dhcp4', 'kea-dhcp6', 'perfdhcp', 'ip']) {
    try { execFileSync('which', [bin], { stdio: 'ignore' }) } catch { return `${bin} is not installed (apt-get install kea-dhcp4-server kea-dhcp6-server kea-admin iproute2)` }
  }
  return ''
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

  constructor (readonly prefix: string, readonly dir: string) {
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
    const p = spawn('ip', ['netns', 'exec', this.srv, `kea-dhcp${family}`, '-c', config], {
      env: { ...process.env, TZ: 'UTC', KEA_PIDFILE_DIR: join(this.dir, 'lock'), KEA_LOCKFILE_DIR: join(this.dir, 'lock') },
      stdio: ['ignore', 'ignore', 'inherit']
    })
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
      const p = spawn('ip', ['netns', 'exec', this.cli, 'perfdhcp', `-${family}`, '-l', this.cliIf, ...args, ...target], { stdio: 'ignore' })
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
