import 'reflect-metadata'; // @peculiar/x509 (via tsyringe) needs the Reflect polyfill before it loads
import * as x509 from '@peculiar/x509';

// @peculiar/x509 needs a WebCrypto provider for signing, verifying and thumbprints; Node 20 ships one
// as `globalThis.crypto`. Every module of this package that uses x509 imports it from here, so the
// provider is set before first use.
x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
