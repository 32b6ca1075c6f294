import { z } from 'zod';
import { est, pkiPaths } from '../est.ts';
import { contract, raw } from './contract.ts';

/**
 * EST (RFC 7030) and the PKI files. Not JSON: the bodies are what the RFCs define (base64 PKCS#7, PEM, DER
 * CRL), declared here by content type. Enrollment reads a base64 PKCS#10 request (`application/pkcs10`)
 * through the EST content-type parser, so no JSON body schema is declared; any other content type is 415.
 */
const tags = ['pki'] as const;
const certs = raw(est.certsContentType, 'certs-only CMS (PKCS#7), base64 (RFC 7030 §4.2.3)');

export const cacerts = contract({
  method: 'GET',
  path: est.cacerts,
  summary: 'The CA certificates (RFC 7030 §4.1)',
  tags,
  access: 'public',
  response: { 200: raw(est.cacertsContentType, 'certs-only CMS (PKCS#7), base64 (RFC 7030 §4.1.3)') },
});

export const simpleenroll = contract({
  method: 'POST',
  path: est.simpleenroll,
  summary:
    'Enroll a device with its one-time token (HTTP Basic: device id and token) and a PKCS#10 request (RFC 7030 §4.2.1)',
  tags,
  access: 'device-credentials',
  response: { 200: certs },
});

export const simplereenroll = contract({
  method: 'POST',
  path: est.simplereenroll,
  summary:
    'Re-enroll with the current device certificate as TLS client certificate (RFC 7030 §4.2.2; device listener)',
  tags,
  access: 'device-credentials',
  response: { 200: certs },
});

export const crl = contract({
  method: 'GET',
  path: pkiPaths.crl,
  summary: 'The certificate revocation list (RFC 5280 §5, DER)',
  tags,
  access: 'public',
  response: { 200: raw('application/pkix-crl', 'the CRL, DER-encoded', true) },
});

export const caChain = contract({
  method: 'GET',
  path: pkiPaths.caChain,
  summary: 'The CA chain as PEM',
  tags,
  access: 'public',
  response: { 200: raw('application/pem-certificate-chain', 'the CA chain, PEM (RFC 8555 §9.1)') },
});

/** The device listener's TUF repository (for enrolled devices, by their TLS client certificate). */
export const tufMetadata = contract({
  method: 'GET',
  path: '/tuf/metadata/:name',
  summary: 'TUF metadata: {n}.root.json, timestamp.json, {n}.snapshot.json, {n}.targets.json',
  tags: ['firmware'],
  access: 'device-credentials',
  params: z.object({ name: z.string() }),
  response: { 200: raw('application/json', 'signed TUF metadata, as signed (bytes matter)') },
});

export const tufTarget = contract({
  method: 'GET',
  path: '/tuf/targets/*',
  summary: 'A TUF target file by hash-prefixed name ({sha256}.{name})',
  tags: ['firmware'],
  access: 'device-credentials',
  params: z.object({ '*': z.string() }),
  response: { 200: raw('application/octet-stream', 'the firmware artifact', true) },
});
