export {
  createFirewall,
  defaultLimits,
  type Firewall,
  type FirewallLimits,
  type Ban,
  type PublishVerdict,
} from './firewall.ts';
export { createFirewallService, type FirewallService } from './firewall.service.ts';
export { firewallRoutes } from './firewall.routes.ts';
export { TokenBucket } from './token-bucket.ts';
