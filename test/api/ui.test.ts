/// <reference lib="dom" />
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/api/app.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'
import { parseBuffer, readFixture, ROOT } from '../helpers/fixtures.js'

// The web UI in a real browser (Debian's chromium, driven by playwright-core), against a store
// filled from real Kea logs. Screenshots land in test/artifacts/ (ignored by git).

const CHROMIUM = '/usr/bin/chromium'
const unavailable = existsSync(CHROMIUM) ? '' : 'chromium is not installed (apt-get install chromium)'
const ARTIFACTS = join(ROOT, 'test', 'artifacts')

describe.skipIf(unavailable !== '' && process.env.CI !== 'true')(`web UI in chromium${unavailable === '' ? '' : ` (skipped: ${unavailable})`}`, () => {
  let app: FastifyInstance
  let store: SqliteStore
  let browser: Browser
  let url = ''
  beforeAll(async () => {
    if (unavailable !== '') throw new Error(`CI needs chromium: ${unavailable}`)
    mkdirSync(ARTIFACTS, { recursive: true })
    store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-ui-')), 'k.db') })
    for (const f of ['captured/kea-dhcp4-INFO-file.log', 'captured/kea-dhcp6-INFO-file.log']) await store.write((await parseBuffer(readFixture(f), { host: 'kea-a', path: f })).events)
    await store.snapshots.write([{
      '@timestamp': '2026-11-24T18:05:00.000Z', id: 'kea-a|dhcp4|1', server: 'kea-a', service: 'dhcp4', state: 'up', version: '2.2.0',
      ha: [{ mode: 'hot-standby', local_role: 'primary', local_state: 'hot-standby', remote_role: 'standby', remote_state: 'hot-standby' }],
      subnets: [{ id: 1, subnet: '192.0.2.0/24', total: 61, assigned: 50, declined: 1, free: 11, utilization: 81.97 }], shared_networks: [],
      totals: { total: 61, assigned: 50, declined: 1, free: 11, utilization: 81.97 }, packets: {}
    }, {
      '@timestamp': '2026-11-24T18:05:00.000Z', id: 'kea-b|dhcp4|1', server: 'kea-b', service: 'dhcp4', state: 'unreachable', error: { kind: 'unreachable', message: 'ECONNREFUSED 127.0.0.1:8000' },
      subnets: [], shared_networks: [], totals: { total: 0, assigned: 0, declined: 0, free: 0, utilization: 0 }, packets: {}
    }])
    app = await buildApp({ store })
    url = await app.listen({ host: '127.0.0.1', port: 0 })
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] })
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
    await app?.close()
    await store?.close()
  })

  it('searches with the keyboard, follows a MAC to its lease history, looks up a holder, shows the servers', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    // A CSP violation is only a console message: collect them too.
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) errors.push(m.text()) })
    const response = await page.goto(url)
    const csp = response?.headers()['content-security-policy'] ?? ''
    expect(csp).toMatch(/script-src 'sha256-[^']+';/)
    expect(csp).toMatch(/frame-ancestors 'none'/)
    expect(csp).not.toMatch(/unsafe-inline/)
    // Keyboard only: Tab to the query box (past the key field and the tab list), type, Enter.
    const focused = async (): Promise<string | undefined> => await page.evaluate(() => (document.activeElement as HTMLInputElement | null)?.name)
    for (let i = 0; i < 6 && await focused() !== 'q'; i++) await page.keyboard.press('Tab')
    expect(await focused()).toBe('q')
    await page.keyboard.type('dataset:kea.dhcp4 AND (action:release OR action:allocate)')
    await page.keyboard.press('Enter')
    await page.waitForFunction(() => document.querySelectorAll('#results tr.event').length > 0)
    const status = await page.textContent('#search-status')
    expect(status).toMatch(/^\d+ events; showing \d+$/)
    // The histogram is its own request (answered by a reader thread): wait for it, not for the list.
    await page.waitForFunction(() => document.querySelectorAll('#histogram rect').length > 0)
    // The raw line of the first result opens in place.
    await page.locator('#results tr.event button.plain').first().click()
    expect(await page.locator('#results pre').first().textContent()).toMatch(/^2026-11-24 \d\d:\d\d:\d\d\.\d{3} INFO {2}\[kea-dhcp[46]\.leases/)
    await page.screenshot({ path: join(ARTIFACTS, 'ui-search.png'), fullPage: false })

    // A MAC in the results leads to that client's lease history, drawn as a timeline.
    const mac = page.locator('#results button.link', { hasText: /^([0-9A-F]{2}-){5}[0-9A-F]{2}$/ }).first()
    const macText = await mac.textContent()
    await mac.click()
    await page.waitForFunction(() => document.querySelectorAll('#lease-result .holder').length > 0)
    expect(await page.textContent('#lease-status')).toMatch(new RegExp(`lease interval\\(s\\) for mac ${macText ?? ''}`))
    await page.waitForFunction(() => document.querySelectorAll('#timeline rect').length > 0)

    // Who held 192.0.2.10 at that moment?
    await page.fill('#at-form input[name=address]', '192.0.2.10')
    await page.fill('#at-form input[name=time]', '2026-11-24T18:02:30Z')
    await page.press('#at-form input[name=time]', 'Enter')
    await page.waitForFunction(() => (document.querySelector('#lease-status')?.textContent ?? '').includes('holder(s) of 192.0.2.10'))
    const holder = await page.locator('#lease-result .holder').first().textContent()
    expect(holder).toMatch(/held by: address 192\.0\.2\.10 on kea-a — MAC 02-00-00-00-00-0A/)
    expect(holder).toMatch(/DHCP4_LEASE_ALLOC .*192\.0\.2\.10/)
    await page.screenshot({ path: join(ARTIFACTS, 'ui-leases.png'), fullPage: true })

    // Servers: arrow keys move between tabs.
    await page.focus('#tab-leases')
    await page.keyboard.press('ArrowRight')
    await page.waitForFunction(() => document.querySelectorAll('#servers .server').length === 2)
    expect(await page.locator('#servers .server').first().textContent()).toMatch(/kea-a dhcp4 UP.*HA hot-standby: primary hot-standby.*subnet 1 192\.0\.2\.0\/24 +82\.0 %/)
    expect(await page.locator('#servers .server').nth(1).textContent()).toMatch(/kea-b dhcp4 UNREACHABLE.*ECONNREFUSED/)
    expect(await page.locator('[role=meter]').count()).toBe(1)
    // The pool bar's width is set through the CSSOM, which the CSP allows.
    expect(await page.locator('[role=meter] > span').evaluate((e) => (e as HTMLElement).style.width)).toBe('81.97%')
    await page.screenshot({ path: join(ARTIFACTS, 'ui-servers.png'), fullPage: true })
    expect(errors).toEqual([])
  }, 60_000)

  it('the OpenAPI explorer renders under its own CSP', async () => {
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    // Not asserted: swagger-ui applies one inline style that its own policy (the plugin's
    // staticCSP) refuses; the explorer works without it.
    const response = await page.goto(`${url}/docs`)
    expect(response?.headers()['content-security-policy']).toMatch(/frame-ancestors 'none'/)
    await page.waitForFunction(() => (document.querySelector('.swagger-ui .info .title')?.textContent ?? '').includes('keatrail API'), undefined, { timeout: 20_000 })
    expect(await page.locator('.opblock').count()).toBeGreaterThan(5)
    expect(errors).toEqual([])
  }, 60_000)
})
