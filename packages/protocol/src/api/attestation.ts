/**
 * Physical security (issue 17, docs/physical-security.md): TPM 2.0 remote attestation in the IETF RATS roles
 * (RFC 9334: the device is the attester, Bulwark the verifier and relying party), signed tamper and health
 * reports, and physical-access records for sites.
 *
 * The device contracts (`access: 'device-credentials'`) are served on the device listener (mutual TLS with
 * the device certificate), like EST re-enrollment and the TUF repository. Binary TPM structures travel as
 * base64 of their TPM 2.0 marshalled form (TPM 2.0 Library, Part 2), nonces and names as lower-case hex.
 *
 * @example
 * ```ts
 * import { api } from '@bulwark/protocol';
 * const c = api.attestation.challenge.response[200].parse(await res.json()); // { nonce, pcrSelection, expiresAt }
 * ```
 */
import { z } from 'zod';
import { contract } from './contract.ts';
import { subjectId } from './privacy.ts';
import { epochMs } from './shared.ts';

const deviceTags = ['attestation'] as const;
const siteTags = ['physical security'] as const;

/** RATS trust tiers (AR4SI): the verifier's verdict on one attestation. */
export const trustTiers = ['affirming', 'warning', 'contraindicated'] as const;
export type TrustTier = (typeof trustTiers)[number];
/** A device's attestation standing now: its last verdict, `overdue` (none fresh enough) or `none` (no TPM registered). */
export const attestationStandings = [...trustTiers, 'overdue', 'none'] as const;
export type AttestationStanding = (typeof attestationStandings)[number];

/**
 * Why a verdict is what it is (one reason per result; `ok` for affirming):
 * - `pcr_mismatch`: the quoted PCR values differ from the reference values of the release the device runs;
 * - `no_reference_values`: the quote is genuine but its release recorded no reference values (warning);
 * - `nonce_mismatch`: the quote's qualifying data is not an outstanding nonce of this device (a replayed or
 *   stale quote);
 * - `signature_invalid`: the quote is not signed by the device's registered attestation key (a foreign key);
 * - `key_not_registered` / `key_not_bound`: no attestation key, or one whose credential activation never
 *   proved it lives in the TPM holding the endorsement key;
 * - `pcr_digest_mismatch`: the PCR values sent do not hash to the digest the TPM signed;
 * - `selection_mismatch`: the quote covers other PCRs than the ones asked for;
 * - `malformed_quote`: the structures do not parse as TPMS_ATTEST / TPMT_SIGNATURE.
 */
export const attestationReasons = [
  'ok',
  'pcr_mismatch',
  'no_reference_values',
  'nonce_mismatch',
  'signature_invalid',
  'key_not_registered',
  'key_not_bound',
  'pcr_digest_mismatch',
  'selection_mismatch',
  'malformed_quote',
] as const;
export type AttestationReason = (typeof attestationReasons)[number];

const base64 = z
  .string()
  .min(4)
  .max(8192)
  .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64');
const hex = (max: number) =>
  z
    .string()
    .min(2)
    .max(max)
    .regex(/^(?:[0-9a-f]{2})+$/, 'must be lower-case hex');

/** PCR values by bank and index: `{ "sha256": { "0": "<hex>", "7": "<hex>" } }`. */
export const pcrValues = z.partialRecord(
  z.enum(['sha1', 'sha256', 'sha384', 'sha512']),
  z.record(z.string().regex(/^(?:[0-9]|1[0-9]|2[0-3])$/, 'PCR index must be 0-23'), hex(128)),
);
export type PcrValues = z.infer<typeof pcrValues>;

// --- device side (device listener, mutual TLS) ---------------------------------------------------

export const registerKey = contract({
  method: 'POST',
  path: '/attestation/keys',
  summary:
    "Register the device's TPM attestation key: answers a credential-activation challenge (TPM2_MakeCredential) for the endorsement key",
  tags: deviceTags,
  access: 'device-credentials',
  body: z
    .object({
      /** The endorsement key's TPM2B_PUBLIC (RSA 2048 or ECC P-256, the TCG default templates). */
      ekPublic: base64,
      /** The attestation key's TPM2B_PUBLIC: a restricted signing key (fixedTPM, fixedParent, sensitiveDataOrigin). */
      akPublic: base64,
    })
    .strict(),
  response: {
    201: z.object({
      challengeId: z.string(),
      /** TPM2B_ID_OBJECT: the credential blob for TPM2_ActivateCredential. */
      credentialBlob: base64,
      /** TPM2B_ENCRYPTED_SECRET: the seed encrypted to the endorsement key. */
      encryptedSecret: base64,
      /** The attestation key's TPM name (nameAlg || digest of TPMT_PUBLIC), hex. */
      akName: z.string(),
      expiresAt: epochMs,
    }),
  },
});

export const activateKey = contract({
  method: 'POST',
  path: '/attestation/keys/activate',
  summary:
    'Prove the attestation key lives in the TPM of the endorsement key: return the activated credential',
  tags: deviceTags,
  access: 'device-credentials',
  body: z.object({ challengeId: z.string().max(64), secret: base64 }).strict(),
  response: { 200: z.object({ status: z.literal('bound'), akName: z.string() }) },
});

export const challenge = contract({
  method: 'POST',
  path: '/attestation/challenge',
  summary: 'A fresh single-use nonce and the PCRs to quote',
  tags: deviceTags,
  access: 'device-credentials',
  response: {
    200: z.object({
      /** Qualifying data for TPM2_Quote (hex, 32 bytes). */
      nonce: z.string(),
      /** tpm2-tools PCR selection, e.g. `sha256:0,1,2,3,4,5,6,7`. */
      pcrSelection: z.string(),
      expiresAt: epochMs,
    }),
  },
});

export const attestationResult = z.object({
  id: z.string(),
  deviceId: z.string(),
  at: epochMs,
  tier: z.enum(trustTiers),
  reason: z.enum(attestationReasons),
  /** A sentence for people: which PCRs differ, which nonce, … */
  detail: z.string(),
  /** The release whose reference values the quote was compared with (`name@version`), if any. */
  release: z.string().nullable(),
  pcrSelection: z.string().nullable(),
  /** PCR indexes whose values differed from the reference (pcr_mismatch). */
  mismatchedPcrs: z.array(z.number().int()),
});
export type AttestationResultView = z.infer<typeof attestationResult>;

export const submitQuote = contract({
  method: 'POST',
  path: '/attestation/quote',
  summary: "Verify a TPM2_Quote over the challenge's nonce and PCRs; the verdict decides the device's access",
  tags: deviceTags,
  access: 'device-credentials',
  body: z
    .object({
      nonce: hex(128),
      /** TPMS_ATTEST as the TPM signed it (tpm2_quote -m). */
      quote: base64,
      /** TPMT_SIGNATURE (tpm2_quote -s, tss format). */
      signature: base64,
      /** The quoted PCRs' values (tpm2_pcrread), by bank and index. */
      pcrs: pcrValues,
    })
    .strict(),
  response: { 200: attestationResult },
});

// --- operators ---------------------------------------------------------------------------------------

export const attestationKey = z.object({
  status: z.enum(['pending', 'bound']),
  akName: z.string(),
  /** SHA-256 of the endorsement key's public area (TPMT_PUBLIC), hex: the TPM's hardware identity. */
  ekHash: z.string(),
  algorithm: z.string(),
  registeredAt: epochMs,
  boundAt: epochMs.nullable(),
});

export const deviceAttestation = z.object({
  deviceId: z.string(),
  standing: z.enum(attestationStandings),
  key: attestationKey.nullable(),
  last: attestationResult.nullable(),
  /** When the last affirming result stops counting (config attestation.maxAge); null without one. */
  dueAt: epochMs.nullable(),
});

export const showDevice = contract({
  method: 'GET',
  path: '/api/v1/attestation/devices/:id',
  summary: "A device's TPM registration, attestation standing and last verdict",
  tags: deviceTags,
  access: 'devices:read',
  params: z.object({ id: z.string().max(64) }),
  response: { 200: deviceAttestation },
});

export const listResults = contract({
  method: 'GET',
  path: '/api/v1/attestation/results',
  summary: 'Attestation verdicts, newest first',
  tags: deviceTags,
  access: 'devices:read',
  query: z.object({
    device: z.string().max(64).optional(),
    tier: z.enum(trustTiers).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  }),
  response: { 200: z.object({ results: z.array(attestationResult) }) },
});

export const removeKey = contract({
  method: 'DELETE',
  path: '/api/v1/attestation/devices/:id/key',
  summary:
    "Forget a device's attestation key (a replaced TPM); the device registers again. Attestation stops deciding its access until then",
  tags: deviceTags,
  access: 'devices:write',
  params: z.object({ id: z.string().max(64) }),
  body: z.object({ reason: z.string().min(1).max(256) }).strict(),
  response: { 200: z.object({ removed: z.boolean() }) },
});

export const securityReport = z.object({
  id: z.string(),
  deviceId: z.string(),
  kind: z.enum(['tamper', 'health']),
  /** Tamper reason, or for a health report the security-relevant changes it carried (`secure-boot-disabled`, …). */
  reasons: z.array(z.string()),
  reportedAt: epochMs,
  receivedAt: epochMs,
  seq: z.number().int(),
  report: z.record(z.string(), z.unknown()),
});

export const listReports = contract({
  method: 'GET',
  path: '/api/v1/attestation/reports',
  summary: 'Verified tamper and health reports, newest first',
  tags: deviceTags,
  access: 'devices:read',
  query: z.object({
    device: z.string().max(64).optional(),
    kind: z.enum(['tamper', 'health']).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  }),
  response: { 200: z.object({ reports: z.array(securityReport) }) },
});

// --- sites and physical access -------------------------------------------------------------------

const siteName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'site names are 1-64 of A-Z a-z 0-9 _ . -');

export const siteAccess = z.object({
  id: z.string(),
  site: z.string(),
  /** Who may enter (a person or a badge holder's name, as the owner records it). */
  person: z.string(),
  /** The privacy data subject this record is about (GDPR export and erasure find it by this id), or null. */
  subject: z.string().nullable(),
  /** What for: maintenance, cleaning, … */
  role: z.string().nullable(),
  grantedBy: z.string(),
  grantedAt: epochMs,
  /** When the owner must review it again; past due fails the compliance check physical.site-access-reviewed. */
  reviewAt: epochMs,
  expiresAt: epochMs.nullable(),
});

export const site = z.object({
  name: z.string(),
  description: z.string().nullable(),
  /** Who answers for physical access to the site (attests the access list). */
  owner: z.string(),
  /** Device groups located at the site. */
  groups: z.array(z.string()),
  updatedAt: epochMs,
  updatedBy: z.string(),
  access: z.array(siteAccess),
});

export const listSites = contract({
  method: 'GET',
  path: '/api/v1/physical/sites',
  summary: 'Sites with their owner and who may access them',
  tags: siteTags,
  access: 'compliance:read',
  response: { 200: z.object({ sites: z.array(site) }) },
});

export const putSite = contract({
  method: 'PUT',
  path: '/api/v1/physical/sites/:name',
  summary: 'Create or change a site (owner, description, device groups located there)',
  tags: siteTags,
  access: 'compliance:write',
  params: z.object({ name: siteName }),
  body: z
    .object({
      owner: z.string().min(1).max(128),
      description: z.string().max(1000).optional(),
      groups: z.array(z.string().max(64)).max(256).default([]),
    })
    .strict(),
  response: { 200: site },
});

export const grantAccess = contract({
  method: 'POST',
  path: '/api/v1/physical/sites/:name/access',
  summary: 'Record that a person may access a site, with a review date',
  tags: siteTags,
  access: 'compliance:write',
  params: z.object({ name: siteName }),
  body: z
    .object({
      person: z.string().min(1).max(128),
      /** The person's data-subject id (`bulwark privacy subject …`), so their requests reach this record. */
      subject: subjectId.optional(),
      role: z.string().max(64).optional(),
      /** Epoch ms or a duration from now (`90d`). */
      reviewAt: z.union([z.number().int(), z.string().max(40)]),
      expiresAt: z.union([z.number().int(), z.string().max(40)]).optional(),
    })
    .strict(),
  response: { 201: siteAccess },
});

export const revokeAccess = contract({
  method: 'DELETE',
  path: '/api/v1/physical/sites/:name/access/:id',
  summary: "Remove a person's access to a site",
  tags: siteTags,
  access: 'compliance:write',
  params: z.object({ name: siteName, id: z.string().max(64) }),
  body: z.object({ reason: z.string().min(1).max(256) }).strict(),
  response: { 200: z.object({ removed: z.boolean() }) },
});
