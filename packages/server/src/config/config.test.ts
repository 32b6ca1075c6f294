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
    expect(c.mqtt.core).toBe('aedes');
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

  it('testConfig takes BULWARK_MQTT_CORE from the environment (npm run test:core), and no other variable', () => {
    const saved = { core: process.env.BULWARK_MQTT_CORE, port: process.env.BULWARK_MQTT_PORT };
    process.env.BULWARK_MQTT_CORE = 'bulwark';
    process.env.BULWARK_MQTT_PORT = '1234';
    try {
      const c = testConfig({ dataDir: '/tmp/x' });
      expect(c.mqtt.core).toBe('bulwark');
      expect(c.mqtt.port).toBe(8883);
    } finally {
      for (const [name, value] of [
        ['BULWARK_MQTT_CORE', saved.core],
        ['BULWARK_MQTT_PORT', saved.port],
      ] as const)
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
    }
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
    [
      { BULWARK_MQTT_CORE: 'mosquitto' },
      /mqtt\.core \(from BULWARK_MQTT_CORE\): must be "aedes" or "bulwark"/,
    ],
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
