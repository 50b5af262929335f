import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { expectedPath, loadManifest, parseGolden } from '../../scripts/golden.js'
import { FIXTURES } from '../helpers/fixtures.js'

// Each real Kea log paired with its expected JSON (regenerate: npm run fixtures:golden).
describe('golden pairs: real Kea logs → expected events', () => {
  for (const c of loadManifest(FIXTURES)) {
    it(c.log, async () => {
      const path = expectedPath(FIXTURES, c)
      expect(existsSync(path), `${path} is missing`).toBe(true)
      const expected = readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown)
      const actual = JSON.parse(JSON.stringify(await parseGolden(FIXTURES, c))) as unknown[]
      expect(actual.length).toBe(expected.length)
      for (let i = 0; i < actual.length; i++) expect(actual[i], `event ${i}`).toEqual(expected[i])
    })
  }
})
