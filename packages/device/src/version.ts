import packageJson from '../package.json' with { type: 'json' };

/** The SDK version, from package.json. */
export const AGENT_VERSION: string = packageJson.version;

/** What the agent reports in heartbeats (`agent` field, at most 64 characters). */
export const AGENT_NAME = `bulwark-agent/${AGENT_VERSION}`;
