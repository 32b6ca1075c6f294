/** A TPM structure that does not parse: the message names the field (`TPMT_PUBLIC.nameAlg: …`). */
export class TpmFormatError extends Error {
  override name = 'TpmFormatError';
  constructor(
    /** The structure and field that failed, e.g. `TPMS_ATTEST.magic`. */
    readonly field: string,
    detail: string,
  ) {
    super(`${field}: ${detail}`);
  }
}
