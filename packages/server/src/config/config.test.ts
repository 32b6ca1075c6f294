import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, testConfig } from './index.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-config-'));

describe('configuration', () => {
  it('has working defaults with no file and no environment', () => {
    const c = loadConfig({ env: {} });
    expect(c.mqtt.port).toBe(8883);
    // The broker core's bounds (DESIGN principle 8).
    expect(c.mqtt).toMatchObject({
      receiveMaximum: 100,
      maxQueuedMessages: 1000,
      maxSessionExpiry: 7 * 86_400,
      topicAliasMaximum: 16,
    });
    expect(c.mqtt.maxKeepAlive).toBeUndefined();
    expect(c.https.port).toBe(8443);
    expect(c.dataDir).toBe(path.resolve('.bulwark'));
    expect(c.database.url).toBeUndefined();
    expect(c.pki.enrollmentTokenTtl).toBe(86_400_000);
    expect(Object.isFrozen(c) && Object.isFrozen(c.mqtt)).toBe(true);
  });

  it('layers file < environment < flags', () => {
    const file = path.join(dir, 'bulwark.yaml');
    writeFileSync(
      file,
      'mqtt:\n  port: 1883\nhttps:\n  port: 9443\npki:\n  hostnames: [gw.example.net]\n  deviceCertValidity: 30d\n',
    );
    const c = loadConfig({
      file,
      env: { BULWARK_HTTPS_PORT: '10443', BULWARK_DATA: dir },
      overrides: { 'mqtt.port': '0' },
    });
    expect(c.mqtt.port).toBe(0);
    expect(c.https.port).toBe(10443);
    expect(c.dataDir).toBe(dir);
    expect(c.pki.hostnames).toEqual(['gw.example.net']);
    expect(c.pki.deviceCertValidity).toBe(30 * 86_400_000);
  });

  it('reads JSON files and comma-separated host lists from the environment', () => {
    const file = path.join(dir, 'bulwark.json');
    writeFileSync(file, JSON.stringify({ logLevel: 'warn' }));
    const c = loadConfig({ file, env: { BULWARK_HOSTNAMES: 'a.example, 10.0.0.5' } });
    expect(c.logLevel).toBe('warn');
    expect(c.pki.hostnames).toEqual(['a.example', '10.0.0.5']);
  });

  it('testConfig takes nothing from the environment', () => {
    const saved = process.env.BULWARK_MQTT_PORT;
    process.env.BULWARK_MQTT_PORT = '1234';
    try {
      expect(testConfig({ dataDir: '/tmp/x' }).mqtt.port).toBe(8883);
    } finally {
      if (saved === undefined) delete process.env.BULWARK_MQTT_PORT;
      else process.env.BULWARK_MQTT_PORT = saved;
    }
  });

  it('reads the broker core bounds, in whole seconds where MQTT counts seconds', () => {
    const file = path.join(dir, 'bounds.yaml');
    writeFileSync(
      file,
      'mqtt:\n  receiveMaximum: 20\n  maxQueuedMessages: 50000\n  maxSessionExpiry: 1d\n' +
        '  topicAliasMaximum: 0\n  maxKeepAlive: 5m\n',
    );
    expect(loadConfig({ file, env: {} }).mqtt).toMatchObject({
      receiveMaximum: 20,
      maxQueuedMessages: 50_000,
      maxSessionExpiry: 86_400,
      topicAliasMaximum: 0,
      maxKeepAlive: 300,
    });
  });

  it.each([
    ['receiveMaximum: 0', /mqtt\.receiveMaximum: must be between 1 and 65535 \(MQTT 5 Receive Maximum\)/],
    ['receiveMaximum: 70000', /mqtt\.receiveMaximum: must be between 1 and 65535/],
    ['maxQueuedMessages: many', /mqtt\.maxQueuedMessages: must be a number/],
    ['maxQueuedMessages: 0', /mqtt\.maxQueuedMessages: must be between 1 and 1000000/],
    [
      'maxSessionExpiry: 1500ms',
      /mqtt\.maxSessionExpiry: must be whole seconds between 1 s and 4294967294 s/,
    ],
    ['maxSessionExpiry: soon', /mqtt\.maxSessionExpiry: must be a positive duration/],
    ['topicAliasMaximum: -1', /mqtt\.topicAliasMaximum: must be between 0 and 65535/],
    ['maxKeepAlive: 1d', /mqtt\.maxKeepAlive: must be whole seconds between 1 s and 65535 s/],
  ])('refuses a broker core bound out of range, naming the key: %s', (line, message) => {
    const file = path.join(dir, 'bad-bound.yaml');
    writeFileSync(file, `mqtt:\n  ${line}\n`);
    expect(() => loadConfig({ file, env: {} })).toThrow(message);
  });

  it('refuses mqtt.core, naming the key: the own core is the only engine', () => {
    const file = path.join(dir, 'core.yaml');
    for (const engine of ['aedes', 'bulwark']) {
      writeFileSync(file, `mqtt:\n  core: ${engine}\n  prot: 1\n`);
      const refused = () => loadConfig({ file, env: {} });
      expect(refused).toThrow(/mqtt\.core: removed: Bulwark's own MQTT 3\.1\.1 and 5\.0 core is the only/);
      // Other unknown keys beside it are still named as such.
      expect(refused).toThrow(/mqtt: unknown key\(s\) prot$/);
    }
    expect(() => loadConfig({ env: {}, overrides: { 'mqtt.core': 'aedes' } })).toThrow(/mqtt\.core: removed/);
  });

  it.each([
    [{ BULWARK_MQTT_PORT: 'abc' }, /mqtt\.port \(from BULWARK_MQTT_PORT\): must be a port number/],
    [{ BULWARK_HTTPS_PORT: '70000' }, /https\.port \(from BULWARK_HTTPS_PORT\): must be between 0 and 65535/],
    [
      { BULWARK_DATABASE_URL: 'mysql://x' },
      /database\.url \(from BULWARK_DATABASE_URL\): must be a postgres:\/\/ URL/,
    ],
    [{ BULWARK_MASTER_KEY: 'short' }, /masterKey \(from BULWARK_MASTER_KEY\): must be 32 bytes/],
    [
      { BULWARK_ENROLLMENT_TOKEN_TTL: 'soon' },
      /pki\.enrollmentTokenTtl \(from BULWARK_ENROLLMENT_TOKEN_TTL\): must be a positive duration/,
    ],
    [{ BULWARK_LOG_LEVEL: 'loud' }, /logLevel \(from BULWARK_LOG_LEVEL\)/],
    [{ BULWARK_HOSTNAMES: 'bad host!' }, /pki\.hostnames/],
  ])('names the key, the variable and what is allowed: %o', (env, message) => {
    expect(() => loadConfig({ env })).toThrow(message);
  });

  it('refuses unknown keys and unreadable files', () => {
    const file = path.join(dir, 'typo.yaml');
    writeFileSync(file, 'mqtt:\n  prot: 1\n');
    expect(() => loadConfig({ file, env: {} })).toThrow(/mqtt: unknown key\(s\) prot/);
    expect(() => loadConfig({ file: path.join(dir, 'missing.yaml'), env: {} })).toThrow(
      /cannot read configuration file/,
    );
    writeFileSync(file, '- a list\n');
    expect(() => loadConfig({ file, env: {} })).toThrow(/must hold a mapping/);
  });
});

describe('describeConfig', () => {
  it('flattens settings and never records secrets', async () => {
    const { describeConfig } = await import('./index.ts');
    const key = 'a'.repeat(64);
    const c = loadConfig({
      env: { BULWARK_MASTER_KEY: key, BULWARK_DATABASE_URL: 'postgres://u:secret@db:5432/b' },
    });
    const d = describeConfig(c);
    expect(d['mqtt.port']).toBe(8883);
    expect(JSON.stringify(d)).not.toContain(key);
    expect(JSON.stringify(d)).not.toContain('secret');
    expect(d['database.url']).toBe('postgres://u:***@db:5432/b');
    const { redactDatabaseUrl } = await import('./index.ts');
    expect(redactDatabaseUrl('postgres://u@db/b?password=hunter2&sslmode=require')).toBe(
      'postgres://u@db/b?password=***&sslmode=require',
    );
  });
});
