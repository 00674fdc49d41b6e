//! The first admin: from `TOKENMINT_BOOTSTRAP_ADMIN`, or generated on an empty database.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::rand::SecureRandom as _;
use secrecy::SecretString;

use super::passwords::Password;
use super::{Identity, NewUser};
use crate::actor::Admin;
use crate::error::Error;
use crate::store::users;
use crate::user::{Claims, Role, Scope, Username};

/// What a start did about the first admin.
pub enum Bootstrap {
    /// Nothing to do: users exist, or the configured admin exists.
    Nothing,
    /// The configured admin was created.
    Created,
    /// `admin` was created with this generated password, to be shown once.
    Generated(SecretString),
}

impl Identity {
    /// Creates the configured bootstrap admin if absent; on an empty database with none
    /// configured, creates `admin` with a random password. The admin gets the `admin`
    /// role and the `admin` scope, both of which administration needs.
    pub async fn bootstrap(
        &self,
        configured: Option<&(String, SecretString)>,
        now: DateTime<Utc>,
    ) -> Result<Bootstrap, Error> {
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
                (username, password.clone(), false)
            }
            None => {
                if self.db.run(users::count).await? > 0 {
                    return Ok(Bootstrap::Nothing);
                }
                (Username::parse("admin")?, random_password()?, true)
            }
        };
        let new = NewUser {
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
