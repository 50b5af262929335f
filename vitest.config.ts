import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    pool: 'forks',
    globalSetup: ['./test/helpers/es-setup.ts', './test/helpers/tmp-setup.ts'],
    reporters: ['default', './test/helpers/summary-reporter.ts']
  }
})
