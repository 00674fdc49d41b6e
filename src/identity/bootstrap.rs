//! The first admin: from `TOKENMINT_BOOTSTRAP_ADMIN`, or generated on an empty database.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::rand::SecureRandom as _;
use secrecy::SecretString;

use super::passwords::Password;
use super::{Identity, NewUser};
use crate::error::Error;
use crate::model::Admin;
use crate::model::{Claims, Role, Scope, Username};
use crate::store::{markers, users};

/// What a start did about the first admin.
pub enum Bootstrap {
    /// Nothing to do: the configured admin exists, or none is configured and the
    /// database has had an admin.
    Nothing,
    /// The configured admin does not exist, but the database has had an admin: it is
    /// not created (it may have been deleted on purpose).
    Refused(String),
    /// The configured admin was created.
    Created,
    /// `admin` was created with this generated password, to be shown once.
    Generated(SecretString),
}

impl Identity {
    /// Creates the first admin, but only on a database that has never had one: the
    /// configured bootstrap admin, or, with none configured, `admin` with a random
    /// password. (A bootstrap admin deleted because its password leaked must not come
    /// back at the next start.) The admin gets the `admin` role and the `admin` scope,
    /// both of which administration needs.
    pub async fn bootstrap(
        &self,
        configured: Option<&(String, SecretString)>,
        now: DateTime<Utc>,
    ) -> Result<Bootstrap, Error> {
        let had_admin = self.db.run(|c| markers::get(c, markers::HAD_ADMIN)).await? != 0;
        let (username, password, generated) = match configured {
            Some((name, password)) => {
                let username = Username::parse(name)
                    .map_err(|e| Error::invalid(format!("TOKENMINT_BOOTSTRAP_ADMIN: {e}")))?;
                let key = username.key();
                if self
                    .db
                    .run(move |c| users::find_by_username_key(c, &key))
                    .await?
                    .is_some()
                {
                    return Ok(Bootstrap::Nothing);
                }
                if had_admin {
                    return Ok(Bootstrap::Refused(username.as_str().to_owned()));
                }
                (username, password.clone(), false)
            }
            None if had_admin => return Ok(Bootstrap::Nothing),
            None => (Username::parse("admin")?, random_password()?, true),
        };
        let new = NewUser {
            tenant: None,
            username,
            password: Password::parse_new(password.clone())
                .map_err(|e| Error::invalid(format!("TOKENMINT_BOOTSTRAP_ADMIN: {e}")))?,
            roles: vec![Role::admin()],
            scopes: vec![Scope::admin()],
            claims: Claims::default(),
        };
        match self.create_user(&Admin::operator(), new, now).await {
            Ok(_) if generated => Ok(Bootstrap::Generated(password)),
            Ok(_) => Ok(Bootstrap::Created),
            // Another instance bootstrapped at the same moment.
            Err(Error::Conflict { .. }) => Ok(Bootstrap::Nothing),
            Err(e) => Err(e),
        }
    }
}

fn random_password() -> Result<SecretString, Error> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 18]);
    ring::rand::SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| Error::internal("random generator failed"))?;
    Ok(SecretString::from(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
    ))
}
