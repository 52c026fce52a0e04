/**
 * The contracts the auth stages share: who a caller is (a virtual key, its team), what they may
 * call, and the limits and budgets that bound them. The control plane keeps these in the store;
 * the data plane reads them from a compiled, in-memory table and never queries the store per
 * request (DESIGN.md, "Two planes").
 */

/** Roles on the admin API, most to least privileged. */
export const roles = ['admin', 'operator', 'developer', 'viewer'] as const;
export type Role = (typeof roles)[number];

import type { RateLimit } from '../config/types.js';

/** Requests and tokens per minute; an absent field is no limit (the config's own type). */
export type { RateLimit };

export const budgetPeriods = ['day', 'week', 'month'] as const;
export type BudgetPeriod = (typeof budgetPeriods)[number];

/**
 * Spend allowed per period, in US dollars. Periods are calendar periods in UTC: a day from
 * midnight, a week from Monday (ISO 8601), a month from the 1st. `soft` (dollars, below `amount`)
 * alerts; `amount` is hard: requests are refused once spend reaches it.
 */
export interface Budget {
  readonly amount: number;
  readonly period: BudgetPeriod;
  readonly soft?: number | undefined;
}

/** Scheduling tier a key's requests carry. */
export const priorities = ['high', 'normal', 'low'] as const;
export type Priority = (typeof priorities)[number];

/** A team: keys belong to at most one; its limits and budget bound all its keys together. */
export interface Team {
  readonly id: string;
  readonly name: string;
  /** Model patterns ("gpt-4o", "local/*", "*"); empty: every model. */
  readonly models: readonly string[];
  readonly limits: RateLimit;
  readonly budget: Budget | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  readonly createdAt: number;
}

/** A person on the admin API, with a role; developers see only their own team. */
export interface User {
  readonly id: string;
  /** Login name or e-mail: what an OIDC token's subject or e-mail claim matches. */
  readonly name: string;
  readonly role: Role;
  readonly teamId: string | undefined;
  readonly createdAt: number;
}

/**
 * A virtual API key as stored: never the key itself, only its sha256 and a prefix for display.
 * `models` empty means every model (within its team's).
 */
export interface ApiKey {
  readonly id: string;
  readonly name: string;
  /** The first characters of the key ("sk-sy-Ab12…"), enough to recognise it in a list. */
  readonly prefix: string;
  /** sha256 of the whole key, lowercase hex. */
  readonly hash: string;
  readonly teamId: string | undefined;
  readonly userId: string | undefined;
  readonly models: readonly string[];
  readonly limits: RateLimit;
  readonly budget: Budget | undefined;
  readonly priority: Priority;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tags: readonly string[];
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  /** After this instant the key is refused; undefined: never expires. */
  readonly expiresAt: number | undefined;
  /** Set once revoked (or once a rotation's grace period ends); refused from then on. */
  readonly revokedAt: number | undefined;
  /**
   * The id of the first key of its rotation chain (its own id until rotated). Rate limits, budgets
   * and usage are kept under it, so rotating a key neither resets what it has spent nor splits its
   * usage in two.
   */
  readonly lineage: string;
}
