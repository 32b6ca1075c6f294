export { createAppService, type AppService, type AppServiceDeps } from './app.service.ts';
export type { AppCheckRequest, AppDecision, IdentifiedApp } from './app.check.ts';
export type { AppComplianceFacts, AppFacts } from './app.facts.ts';
export type { AppRecord, AppStatus, AppTokenInfo, DeliveryReport } from './app.store.ts';
export type { AppDetail, AppView, DeliveryStats } from './app.views.ts';
export { APP_TOKEN_PREFIX } from './app.tokens.ts';
export { appRoutes } from './app.routes.ts';
