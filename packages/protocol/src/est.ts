/** EST (RFC 7030) paths and media types shared by the server and the device SDK. */
export const est = {
  prefix: '/.well-known/est',
  cacerts: '/.well-known/est/cacerts',
  simpleenroll: '/.well-known/est/simpleenroll',
  simplereenroll: '/.well-known/est/simplereenroll',
  /** RFC 7030 §4.2.1: the request body is a base64-encoded PKCS#10 request. */
  csrContentType: 'application/pkcs10',
  /** RFC 7030 §4.1.3 / §4.2.3: certs-only CMS, base64-encoded. */
  certsContentType: 'application/pkcs7-mime; smime-type=certs-only',
  cacertsContentType: 'application/pkcs7-mime',
} as const;

export const pkiPaths = {
  crl: '/pki/crl',
  caChain: '/pki/ca-chain.pem',
} as const;
