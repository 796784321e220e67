import { z } from 'zod';
import type { ErrorCode } from './codes.js';
import { Limits, namePattern } from './limits.js';

/** Text that can be stored anywhere: PostgreSQL's text type cannot hold U+0000, so no store takes it. */
const text = () => z.string().refine((value) => !value.includes('\u0000'), 'must not contain U+0000 (NUL)');

const httpUrl = text()
  .max(Limits.urlMax)
  .refine((value) => /^https?:\/\//i.test(value) && URL.canParse(value), 'must be an http(s) URL');

export const topicName = z.string().min(1).max(Limits.topicMax).regex(namePattern, 'letters, digits, ".", "_" and "-" only');
export const userName = z.string().min(1).max(Limits.userNameMax).regex(namePattern, 'letters, digits, ".", "_" and "-" only');

export const action = z.object({
  label: text().min(1).max(Limits.actionLabelMax),
  url: httpUrl,
});
export type Action = z.infer<typeof action>;

export const target = z
  .object({
    users: z.array(userName).max(Limits.recipientsMax).optional(),
    topics: z.array(topicName).max(Limits.recipientsMax).optional(),
    all: z.literal(true).optional(),
  })
  .refine((to) => to.all === true || (to.users?.length ?? 0) + (to.topics?.length ?? 0) > 0, 'name at least one user or topic, or all: true');
export type Target = z.infer<typeof target>;

/** The body of `POST /v1/notifications`. */
export const publishRequest = z.object({
  to: target,
  title: text().min(1).max(Limits.titleMax),
  body: text().max(Limits.bodyMax).optional(),
  priority: z.int().min(1).max(5).optional(),
  tags: z.array(text().min(1).max(Limits.tagMax)).max(Limits.tagsMax).optional(),
  url: httpUrl.optional(),
  icon: httpUrl.optional(),
  actions: z.array(action).max(Limits.actionsMax).optional(),
  key: text().min(1).max(Limits.keyMax).optional(),
  ttl: z.int().min(1).max(Limits.ttlMax).optional(),
  deliverAt: z.iso.datetime({ offset: true }).optional(),
});
export type PublishRequest = z.infer<typeof publishRequest>;

/** The body of `POST /v1/notifications/batch`. */
export const publishBatchRequest = z.object({
  notifications: z.array(z.unknown()).min(1).max(Limits.batchMax),
});

/** Which stable code a validation failure of each publish field gets. */
export const publishFieldCodes: Record<string, ErrorCode> = {
  to: 'invalid_target',
  title: 'invalid_title',
  body: 'invalid_body',
  priority: 'invalid_priority',
  tags: 'invalid_tags',
  url: 'invalid_url',
  icon: 'invalid_url',
  actions: 'invalid_actions',
  key: 'invalid_key',
  ttl: 'invalid_ttl',
  deliverAt: 'invalid_deliver_at',
};

/** A notification as a device sees it: in `notification` frames and inbox pages. */
export interface Notification {
  seq: number;
  id: string;
  title: string;
  body: string;
  priority: number;
  tags: string[];
  url: string | null;
  icon: string | null;
  actions: Action[];
  topic?: string;
  key?: string;
  /** ISO 8601. */
  createdAt: string;
  /** ISO 8601; absent when the notification never expires. */
  expiresAt?: string;
  read: boolean;
}

export const notification = z.object({
  seq: z.int().min(1),
  id: z.string(),
  title: z.string(),
  body: z.string(),
  priority: z.int().min(1).max(5),
  tags: z.array(z.string()),
  url: z.string().nullable(),
  icon: z.string().nullable(),
  actions: z.array(action),
  topic: z.string().optional(),
  key: z.string().optional(),
  createdAt: z.string(),
  expiresAt: z.string().optional(),
  read: z.boolean(),
});
