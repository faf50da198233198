//! The platform API profiles: the billing APIs of the platforms billow serves, path for path
//! and field for field (`docs/profiles/`), so that a console written against one of them works
//! against billow by changing its base URL.
//!
//! Each profile is a folder with its routes and its wire types: a mapping from the domain (the
//! store's customers, invoices, payments; amounts as the core computed them) to the platform's
//! shapes, with no billing logic and no queries of its own beyond what the store offers. What a
//! profile needs that the domain does not hold is added to the domain (a customer's `owner`, an
//! invoice's `updated_at`), never computed or made up in the profile.
//!
//! What the profiles share: the Bearer credential of the native API (a workspace key sees every
//! customer of its workspace, a customer token only its own customer, and gets the platform's
//! not-found for any other), customers named by billow's id or by their external id (the id the
//! platform knows), and errors written in each platform's own shape (`shared`).

pub(crate) mod akkeris;
pub(crate) mod emcp;
pub(crate) mod fallback;
pub(crate) mod openmeter;
mod shared;

use shared::ProfileRouter;

/// Which profiles `billow serve` answers; all by default. A profile switched off answers 404 on
/// its paths, as any unknown path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profiles {
    /// Enclaive EMCP: `/api/teams/{id}/last-invoice`, `/api/teams/{id}/billing-history`.
    pub emcp: bool,
    /// Akkeris: `/account/invoices`, `/organizations/{org}/invoices`, `/spaces/{space}/invoices`
    /// (and the seed's singular forms), each with `/{invoice_id}`.
    pub akkeris: bool,
    /// OpenMeter's event API under `/openmeter`: `/openmeter/api/v1/events`,
    /// `/openmeter/api/v1/meters` and a meter's `/query`.
    pub openmeter: bool,
}

impl Default for Profiles {
    fn default() -> Self {
        Self::all()
    }
}

impl Profiles {
    /// Every profile on.
    pub const fn all() -> Self {
        Self {
            emcp: true,
            akkeris: true,
            openmeter: true,
        }
    }

    /// Every profile off: the native API alone.
    pub const fn none() -> Self {
        Self {
            emcp: false,
            akkeris: false,
            openmeter: false,
        }
    }

    /// The profiles' names, as `--profiles` takes them.
    pub const NAMES: [&'static str; 3] = ["emcp", "akkeris", "openmeter"];

    /// The profiles a comma-separated list names (`emcp,akkeris`; `all`; `none`).
    ///
    /// # Errors
    /// The first name that is no profile's.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut profiles = Self::none();
        for name in list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match name {
                "all" => profiles = Self::all(),
                "none" => profiles = Self::none(),
                "emcp" => profiles.emcp = true,
                "akkeris" => profiles.akkeris = true,
                "openmeter" => profiles.openmeter = true,
                other => {
                    return Err(format!(
                        "no profile is named {other:?}; the profiles are {} (or all, none)",
                        Self::NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(profiles)
    }
}

/// The routes of the profiles `profiles` switches on.
pub(crate) fn router(profiles: Profiles) -> ProfileRouter {
    let mut router = ProfileRouter::new();
    if profiles.emcp {
        router = router.merge(emcp::router());
    }
    if profiles.akkeris {
        // Plain axum routes (one handler serves the singular and the plural path), their
        // document written out by hand.
        let mut akkeris: ProfileRouter = akkeris::router().into();
        *akkeris.get_openapi_mut() = akkeris::document();
        router = router.merge(akkeris);
    }
    if profiles.openmeter {
        router = router.merge(openmeter::router());
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_names_switches_profiles_on() {
        assert_eq!(
            Profiles::parse("emcp,akkeris,openmeter").unwrap(),
            Profiles::all()
        );
        assert_eq!(
            Profiles::parse("akkeris").unwrap(),
            Profiles {
                akkeris: true,
                ..Profiles::none()
            }
        );
        assert_eq!(Profiles::parse("none").unwrap(), Profiles::none());
        assert_eq!(Profiles::parse("").unwrap(), Profiles::none());
        assert_eq!(Profiles::parse(" all ").unwrap(), Profiles::all());
        let error = Profiles::parse("emcp,stripe").unwrap_err();
        assert!(error.contains("\"stripe\""), "{error}");
    }
}
