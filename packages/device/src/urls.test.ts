import { describe, expect, it } from 'vitest';
import { defaultMqttUrl, parseMqttUrl, parseServerUrl } from './urls.ts';

describe('parseServerUrl', () => {
  it('accepts https and returns the origin', () => {
    expect(parseServerUrl('https://bulwark.example:8443/')).toBe('https://bulwark.example:8443');
    expect(parseServerUrl('https://bulwark.example')).toBe('https://bulwark.example');
  });

  it.each([
    ['http://bulwark.example', /https:\/\//],
    ['bulwark.example', /not a URL/],
    ['https://user:pw@bulwark.example', /credentials/],
    ['https://bulwark.example/est', /path/],
    ['https://bulwark.example/?x=1', /query/],
  ])('rejects %s', (text, problem) => {
    expect(() => parseServerUrl(text)).toThrow(problem);
  });
});

describe('parseMqttUrl', () => {
  it('accepts mqtts and fills in port 8883', () => {
    expect(parseMqttUrl('mqtts://localhost:18883')).toBe('mqtts://localhost:18883');
    expect(parseMqttUrl('mqtts://broker.example')).toBe('mqtts://broker.example:8883');
  });

  it('refuses plain MQTT: the device authenticates with its TLS certificate', () => {
    expect(() => parseMqttUrl('mqtt://localhost:1883')).toThrow(/mqtts:\/\//);
  });
});

describe('defaultMqttUrl', () => {
  it('is the EST server host on port 8883', () => {
    expect(defaultMqttUrl('https://bulwark.example:8443')).toBe('mqtts://bulwark.example:8883');
    expect(defaultMqttUrl('https://[::1]:8443')).toBe('mqtts://[::1]:8883');
  });
});
