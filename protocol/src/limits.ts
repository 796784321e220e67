/** Field limits of contract v1. Servers enforce them; clients may use them to validate early. */
export const Limits = {
  /** Title length in characters, 1..256. */
  titleMax: 256,
  /** Body length in characters. */
  bodyMax: 4096,
  /** Number of tags per notification. */
  tagsMax: 16,
  /** Characters per tag. */
  tagMax: 64,
  /** Number of action buttons per notification. */
  actionsMax: 3,
  /** Characters per action label. */
  actionLabelMax: 64,
  /** Characters per URL (url, icon, action url). */
  urlMax: 2048,
  /** Characters of a replacement `key`. */
  keyMax: 256,
  /** Longest ttl in seconds: one year. */
  ttlMax: 365 * 24 * 3600,
  /** Notifications in one batch publish. */
  batchMax: 100,
  /** Users or topics named in one `to`. */
  recipientsMax: 1000,
  /** Seqs in one read request. */
  readSeqsMax: 1000,
  /** Items per inbox page. */
  pageMax: 200,
  /** Characters of a topic name. */
  topicMax: 64,
  /** Characters of a user name. */
  userNameMax: 64,
} as const;

/** Topic and user names: letters, digits, `.`, `_`, `-`; start with a letter or digit. */
export const namePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
