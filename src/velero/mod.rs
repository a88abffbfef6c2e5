//! Velero's side of object storage, shared by the simulator's Velero stand-in (which writes and
//! reads backups) and the velero-restore drill (which checks that a backup's files are there and
//! agree with its Backup object): the backup format and layout ([`format`]) and how a
//! BackupStorageLocation is opened ([`location`]).

pub mod format;
pub mod location;
