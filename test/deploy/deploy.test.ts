import { execFile, execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { describe, expect, it } from 'vitest'
import { buildApp } from '../../src/api/app.js'
import { loadConfig } from '../../src/config/config.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { ROOT } from '../helpers/fixtures.js'

// No Docker engine runs here: the compose file, the Dockerfile and the deployment files are
// checked for what a user's `docker compose up` and `systemctl start` rely on.

const read = (f: string): string => readFileSync(join(ROOT, f), 'utf8')

interface Service {
  image?: string
  build?: unknown
  environment?: string[]
  ports?: string[]
  volumes?: string[]
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test: unknown }
  command?: unknown
}

describe('docker-compose.yml', () => {
  const compose = parseYaml(read('docker-compose.yml')) as { services: Record<string, Service>, volumes: Record<string, unknown> }
  const env = Object.fromEntries(read('.env.example').split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split('=', 2) as [string, string]))
  const s = compose.services

  it('has Elasticsearch, Kibana, the kibana_system password step and keatrail', () => {
    expect(Object.keys(s).sort()).toEqual(['elasticsearch', 'keatrail', 'kibana', 'kibana-password'])
  })

  it('pins the stack version; every ${VAR} it uses is in .env.example', () => {
    expect(env.STACK_VERSION).toMatch(/^8\.\d+\.\d+$/)
    expect(s.elasticsearch?.image).toBe('docker.elastic.co/elasticsearch/elasticsearch:${STACK_VERSION}')
    expect(s.kibana?.image).toBe('docker.elastic.co/kibana/kibana:${STACK_VERSION}')
    const used = new Set([...read('docker-compose.yml').matchAll(/(?<!\$)\$\{([A-Z_]+)\}/g)].map((m) => m[1] as string))
    expect([...used].filter((v) => env[v] === undefined)).toEqual([])
  })

  it('runs with security on and generated passwords, Elasticsearch and Kibana only on loopback', () => {
    expect(s.elasticsearch?.environment).toEqual(expect.arrayContaining(['xpack.security.enabled=true', 'ELASTIC_PASSWORD=${ELASTIC_PASSWORD}', 'discovery.type=single-node']))
    expect(s.kibana?.environment).toEqual(expect.arrayContaining(['ELASTICSEARCH_USERNAME=kibana_system', 'ELASTICSEARCH_PASSWORD=${KIBANA_PASSWORD}']))
    expect(s.elasticsearch?.ports).toEqual(['127.0.0.1:${ES_PORT}:9200'])
    expect(s.kibana?.ports).toEqual(['127.0.0.1:${KIBANA_PORT}:5601'])
  })

  it('starts in order behind health checks', () => {
    for (const name of ['elasticsearch', 'kibana', 'keatrail']) expect(s[name]?.healthcheck?.test, name).toBeDefined()
    expect(s['kibana-password']?.depends_on).toEqual({ elasticsearch: { condition: 'service_healthy' } })
    expect(s.kibana?.depends_on).toEqual({ 'kibana-password': { condition: 'service_completed_successfully' } })
    expect(s.keatrail?.depends_on).toEqual({ elasticsearch: { condition: 'service_healthy' }, kibana: { condition: 'service_healthy' } })
  })

  it('keatrail is built from the repo, runs setup then run, reads Kea logs read-only and publishes syslog', () => {
    expect(s.keatrail?.build).toBe('.')
    expect(JSON.stringify(s.keatrail?.command)).toMatch(/keatrail setup --es http:\/\/elasticsearch:9200 --kibana http:\/\/kibana:5601 && exec keatrail run --config \/etc\/keatrail\/keatrail.yaml/)
    expect(s.keatrail?.volumes).toEqual(expect.arrayContaining(['${KEA_LOG_DIR}:/var/log/kea:ro', './deploy/compose-keatrail.yaml:/etc/keatrail/keatrail.yaml:ro']))
    expect(s.keatrail?.ports).toEqual(['${SYSLOG_PORT}:5514/udp', '${SYSLOG_PORT}:5514/tcp', '127.0.0.1:${API_PORT}:8080'])
    // Its health is readiness (store and sources), asked of the API it publishes.
    expect(JSON.stringify(s.keatrail?.healthcheck?.test)).toContain('http://127.0.0.1:8080/readyz')
    for (const v of (s.keatrail?.volumes ?? []).concat(s.elasticsearch?.volumes ?? [])) {
      const src = v.split(':')[0] as string
      if (src.startsWith('./')) expect(existsSync(join(ROOT, src)), src).toBe(true)
      else if (!src.startsWith('${')) expect(compose.volumes[src], src).toBeDefined()
    }
  })

  it('the keatrail config it mounts is one keatrail run accepts, and matches the published port', () => {
    const cfg = loadConfig(join(ROOT, 'deploy', 'compose-keatrail.yaml'))
    expect(cfg.store).toMatchObject({ type: 'elasticsearch', url: 'http://elasticsearch:9200' })
    const syslog = cfg.sources.find((x) => x.type === 'syslog') as { udp?: { port: number }, tcp?: { port: number } }
    expect([syslog.udp?.port, syslog.tcp?.port]).toEqual([5514, 5514])
    // The API on the port the compose file publishes, reachable from outside the container.
    expect(cfg.api).toMatchObject({ enabled: true, host: '0.0.0.0', port: 8080 })
  })
})

describe('Dockerfile', () => {
  const lines = read('Dockerfile').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'))
  it('is multi-stage on a pinned Node image, and the runtime stage runs as a non-root user', () => {
    const froms = lines.filter((l) => l.startsWith('FROM '))
    expect(froms.length).toBe(2)
    for (const f of froms) expect(f).toMatch(/^FROM node:20\.\d+-bookworm-slim/)
    const runtime = lines.slice(lines.indexOf(froms[1] as string))
    const user = runtime.filter((l) => l.startsWith('USER ')).pop()
    expect(user).toBeDefined()
    expect(user).not.toMatch(/USER (root|0)\b/)
    expect(runtime.some((l) => l.startsWith('COPY --from=build'))).toBe(true)
    expect(lines.some((l) => /^ADD\s+https?:/.test(l))).toBe(false)
  })

  it('copies only paths that exist, and leaves build inputs and tests out of the context', () => {
    for (const l of lines.filter((x) => x.startsWith('COPY ') && !x.includes('--from'))) {
      const parts = l.split(/\s+/).slice(1, -1)
      for (const p of parts) expect(existsSync(join(ROOT, p)), p).toBe(true)
    }
    const ignore = read('.dockerignore').split('\n')
    for (const x of ['node_modules', 'dist', 'data', 'test', '.git']) expect(ignore).toContain(x)
    expect(lines.some((l) => l.startsWith('ENTRYPOINT ["keatrail"]'))).toBe(true)
  })

  it('its health check (and the compose file\'s) passes only while keatrail is ready', async () => {
    const hc = /^HEALTHCHECK .* CMD \["node", "-e", "(.*)"\]$/.exec(lines.find((l) => l.startsWith('HEALTHCHECK ')) ?? '')?.[1]
    expect(hc).toBeDefined()
    const compose = parseYaml(read('docker-compose.yml')) as { services: Record<string, Service> }
    expect(compose.services.keatrail?.healthcheck?.test).toEqual(['CMD', 'node', '-e', hc])
    // Run the very command against a real API on a free port, ready and then not.
    let ready = true
    const store = new SqliteStore({ path: ':memory:' })
    const app = await buildApp({ store, status: { sourcesRunning: () => ready } })
    const port = new URL(await app.listen({ host: '127.0.0.1', port: 0 })).port
    // Asynchronously: the API answering it runs in this process.
    const check = async (): Promise<number | null> => await new Promise((resolve) => {
      execFile(process.execPath, ['-e', (hc as string).replace('127.0.0.1:8080', `127.0.0.1:${port}`)], { timeout: 10_000 }, (err) => { resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : null) })
    })
    try {
      expect(await check()).toBe(0)
      ready = false
      expect(await check()).toBe(1)
    } finally {
      await app.close()
      await store.close()
    }
  })
})

describe('deploy/', () => {
  it('the HA-site example is a config keatrail run accepts', () => {
    const cfg = loadConfig(join(ROOT, 'deploy', 'keatrail-ha-site.yaml'))
    expect(cfg.kea.servers.map((x) => x.name)).toEqual(['kea-a', 'kea-b'])
    expect(cfg.store.type).toBe('elasticsearch')
  })

  it('the systemd unit is hardened, reads Kea\'s logs and the journal through groups, and verifies', () => {
    const unit = read('deploy/keatrail.service')
    for (const d of ['User=keatrail', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'ReadOnlyPaths=/var/log/kea', 'CapabilityBoundingSet=', 'StateDirectory=keatrail']) {
      expect(unit.split('\n'), d).toContain(d)
    }
    expect(unit).toMatch(/^SupplementaryGroups=.*\b_kea\b.*\bsystemd-journal\b/m)
    let analyze = ''
    try { analyze = execFileSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).trim() } catch { /* not installed */ }
    if (analyze === '') return
    // verify also checks that ExecStart exists: check a copy pointing at /bin/true.
    const copy = join(mkdtempSync(join(tmpdir(), 'kt-unit-')), 'keatrail.service')
    writeFileSync(copy, unit.replace(/^ExecStart=.*$/m, 'ExecStart=/bin/true'))
    const out = execFileSync(analyze, ['verify', copy], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    expect(out).not.toMatch(/Unknown|Invalid/i)
  })
})
